import type { Logger } from 'pino'
import type { WebSocket, WebSocketBehavior } from 'uWebSockets.js'
import { CloseCode, LINK_IDLE_TIMEOUT_S, MAX_LINK_FRAME_BYTES, decodeLinkCall, encodeLinkAnswer } from '@switchboard/protocol'
import { sendError } from './http.js'
import type { InternalAnswer, InternalCalls } from './internal-calls.js'

export interface RouterLinkDeps {
  isInternalCaller: (authorization: string) => boolean
  calls: InternalCalls
  log: Logger
  /**
   * A link was lost rather than closed (a router died, or dropped it after a call failed: any
   * close but 1000 and 1001). Kept pushes it carried may have been answered `failed` and only
   * kept: the edge tells its resuming clients their inbox heads.
   */
  onLinkLost?: () => void
}

/** A link holds nothing per socket: every call carries what it needs. */
type LinkData = Record<string, never>

/** uWS send(): the message was dropped because the backlog is past maxBackpressure. */
const DROPPED = 2

export interface RouterLinks {
  /** The `.ws(LINK_PATH, behavior)` of the internal app. */
  behavior: WebSocketBehavior<LinkData>
  /** Closes every link with 1001 (the last step of a drain, before the internal port closes). */
  closeAll(): void
}

/**
 * The edge's end of the router links (protocol link.ts): one websocket per router, on the
 * internal port, carrying the internal calls as pipelined binary frames. Each call is answered
 * within its frame's callback, so answers leave in call order. Links are not client sockets:
 * they are not in the user index, `edge_connections` or the drain's spread of 1001 closes.
 */
export function createRouterLinks(deps: RouterLinkDeps): RouterLinks {
  const { calls, log } = deps
  const links = new Set<WebSocket<LinkData>>()

  const behavior: WebSocketBehavior<LinkData> = {
    maxPayloadLength: MAX_LINK_FRAME_BYTES,
    // Room for the answers to a few large calls while the router reads slowly; past that the
    // router is not reading at all, and the link is cut (below) so it fails over and reconnects.
    maxBackpressure: 4 * MAX_LINK_FRAME_BYTES,
    closeOnBackpressureLimit: false,
    // Routers ping every 5 s, and any frame resets the timer: only a dead or unreachable router
    // is cut, after three missed pings (a router's own cut is not seen here: its reset is lost).
    idleTimeout: LINK_IDLE_TIMEOUT_S,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      if (!deps.isInternalCaller(req.getHeader('authorization'))) {
        log.warn({ route: 'link' }, 'internal call refused: bad token')
        return sendError(res, 401, 'unauthorized', 'internal token required')
      }
      const protocol = req.getHeader('sec-websocket-protocol').split(',')[0]!.trim()
      res.upgrade({}, req.getHeader('sec-websocket-key'), protocol, req.getHeader('sec-websocket-extensions'), context)
    },
    open: (ws) => {
      links.add(ws)
      log.info({ links: links.size }, 'router link opened')
    },
    message: (ws, message, isBinary) => {
      // uWS reuses `message` after this callback: decoding copies it into a string now.
      const call = isBinary ? decodeLinkCall(Buffer.from(message).toString('utf8')) : undefined
      if (!call) {
        log.warn({ isBinary, bytes: message.byteLength }, 'not a link call; closing the link')
        return ws.end(CloseCode.protocolViolation, 'not a link call')
      }
      const answer = calls(call.op, call.payload, call.requestIds === '-' ? '' : call.requestIds, 'link')
      if (answer === undefined) return // a routed push: never answered
      if (!(answer instanceof Promise)) return send(ws, call.callId, answer)
      // A membership change once written, receipts once settled: answered later, with the turn's other late answers.
      void answer.then((a) => answerLater(ws, call.callId, a))
    },
    close: (ws, code) => {
      links.delete(ws)
      log.info({ code, links: links.size }, 'router link closed')
      if (code !== 1000 && code !== CloseCode.draining) deps.onLinkLost?.()
    },
  }

  /**
   * Answers settled outside a link's callback (receipts settle on a client's ack or a timer)
   * are not corked by uWS: each send would be its own write. They wait for the end of the turn
   * and leave corked together, one write per link and turn.
   */
  const late = new Map<WebSocket<LinkData>, [number, InternalAnswer][]>()
  function answerLater(ws: WebSocket<LinkData>, callId: number, answer: InternalAnswer): void {
    const waiting = late.get(ws)
    if (waiting) return void waiting.push([callId, answer])
    late.set(ws, [[callId, answer]])
    if (late.size === 1) setImmediate(sendLate)
  }
  function sendLate(): void {
    for (const [ws, answers] of late) {
      // uWS throws on a closed socket; one cut by a full backlog leaves `links` at once.
      if (!links.has(ws)) continue
      ws.cork(() => {
        for (const [callId, answer] of answers) if (links.has(ws)) send(ws, callId, answer)
      })
    }
    late.clear()
  }

  function send(ws: WebSocket<LinkData>, callId: number, answer: InternalAnswer): void {
    if (ws.send(encodeLinkAnswer(callId, answer.status, answer.body), true) === DROPPED) {
      log.warn({ backlogBytes: ws.getBufferedAmount() }, 'router link not reading its answers; cutting it')
      ws.close()
    }
  }

  return {
    behavior,
    closeAll() {
      // end() runs the close handler at once, which deletes from the set: iterate a copy.
      for (const ws of [...links]) ws.end(CloseCode.draining, 'edge draining')
    },
  }
}
