import { z } from 'zod'
import { MAX_ACK_IDS } from '@switchboard/wire'
import type { ErrorFrame, ErrorFrameCode, InboxFrame, PongFrame, Position, PushFrame, RefreshedFrame, WelcomeFrame } from '@switchboard/wire'
import { MessageId } from './push-api.js'

// The frames' shapes live in @switchboard/wire (shared with the client SDK); the services'
// builders and the client-frame parser are here.
export type { ErrorFrame, ErrorFrameCode, InboxFrame, PongFrame, PushFrame, RefreshedFrame, ServerFrame, WelcomeFrame } from '@switchboard/wire'

/** The longest token a `refresh` frame may carry (the frame is bound by EDGE_MAX_FRAME_BYTES too). */
export const MAX_REFRESH_TOKEN_LENGTH = 16_384

/** Frames a client may send: `ping`, `refresh` with a fresh token, and `ack` of pushes that asked for a receipt. */
export const ClientFrame = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ping') }),
  z.strictObject({ type: z.literal('refresh'), token: z.string().min(1).max(MAX_REFRESH_TOKEN_LENGTH) }),
  z.strictObject({ type: z.literal('ack'), ids: z.array(MessageId).min(1).max(MAX_ACK_IDS) }),
])
export type ClientFrame = z.output<typeof ClientFrame>

export const PONG_FRAME = JSON.stringify({ type: 'pong' } satisfies PongFrame)

/** `resume`: for a client that offered `resume.`, whether it recovered (when it gave a position) and the inbox's head. */
export function welcomeFrame(connId: string, nodeId: string, resume?: { recovered: boolean | undefined; head: Position | undefined }): string {
  const { recovered, head } = resume ?? {}
  return JSON.stringify({ type: 'welcome', connId, nodeId, recovered, epoch: head?.epoch, offset: head?.offset } satisfies WelcomeFrame)
}

/** `exp`: s epoch, the refreshed token's. */
export function refreshedFrame(exp: number): string {
  return JSON.stringify({ type: 'refreshed', exp } satisfies RefreshedFrame)
}

export function inboxFrame(head: Position): string {
  return JSON.stringify({ type: 'inbox', epoch: head.epoch, offset: head.offset } satisfies InboxFrame)
}

export function errorFrame(code: ErrorFrameCode, message: string): string {
  return JSON.stringify({ type: 'error', code, message } satisfies ErrorFrame)
}

/**
 * A kept push frame for one recipient: the frame serialized once at the router, with the
 * recipient's position spliced in before its closing brace (epochs are hex, so no escaping).
 */
export function framedAt(frame: string, epoch: string, offset: number): string {
  return `${frame.slice(0, -1)},"epoch":"${epoch}","offset":${offset}}`
}

/** Serialized once per push at the router; edges forward the string as is. `ack`: the push asks for a receipt. */
export function pushFrame(id: string, event: string, data: unknown, ts: number, ack?: boolean): string {
  return JSON.stringify({ type: 'push', id, event, data: data ?? null, ts, ack: ack || undefined } satisfies PushFrame)
}

/** Parses a client's text frame; `undefined` means a protocol violation (close 1008). */
export function parseClientFrame(text: string): ClientFrame | undefined {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return undefined // not JSON: the caller closes with 1008
  }
  const r = ClientFrame.safeParse(json)
  return r.success ? r.data : undefined
}
