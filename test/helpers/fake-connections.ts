// The edge's connection lifecycle without sockets: fake sockets that behave like uWS's, a
// registration whose writes complete when the test says, inbox reads and room arrivals likewise,
// and a fake clock. Shared by the unit tests of Connections.
import type { CloseCause, Position } from '@switchboard/protocol'
import type { ConnectionInfo, InboxRead } from '@switchboard/registry'
import { ConnIds } from '../../apps/edge/src/conn-ids.js'
import { Connections, type ClientSocket, type Conn, type ConnectionRegistration, type ConnectionsDeps, type TokenLifetime } from '../../apps/edge/src/connections.js'
import { FakeClock, settle } from './fake-clock.js'
import { FakeUwsSocket } from './fake-socket.js'

export const PING = JSON.stringify({ type: 'ping' })
export const MAX_FRAMES_PER_S = 5
export const MAX_FRAME_BYTES = 100
export const MAX_BACKLOG = 1_000

export class FakeSocket extends FakeUwsSocket implements ClientSocket {
  constructor(
    private readonly conn: Conn,
    /** uWS's close handler. */
    private readonly closeHandler: (ws: FakeSocket, code: number) => void,
  ) {
    super()
  }

  getUserData(): Conn {
    this.ensureOpen()
    return this.conn
  }

  /** The client (or the network) closes it, with any code it likes. */
  clientCloses(code: number): void {
    this.end(code, '')
  }

  protected onClose(code: number): void {
    this.closeHandler(this, code)
  }
}

/** Registry writes that complete when the test says; every call in order. */
export class FakeRegistration implements ConnectionRegistration {
  readonly calls: string[] = []
  readonly #writes = new Map<string, () => void>()

  register(conn: ConnectionInfo): Promise<void> {
    this.calls.push(`register ${conn.connId}`)
    return new Promise((resolve) => this.#writes.set(conn.connId, resolve))
  }

  async unregister(_userId: string, connId: string, cause: CloseCause): Promise<void> {
    this.calls.push(`unregister ${connId} ${cause}`)
  }

  /** The registry write of `connId` completes. */
  written(connId: string): void {
    this.#writes.get(connId)!()
  }
}

export function counter() {
  return {
    total: 0,
    inc(value = 1) {
      this.total += value
    },
  }
}

/** Inbox reads that complete when the test says. */
export class ControlledInbox {
  readonly reads: { userId: string; from: Position; answer(r: InboxRead): void; fail(err: Error): void }[] = []
  read(userId: string, from: Position): Promise<InboxRead> {
    return new Promise((answer, fail) => this.reads.push({ userId, from, answer, fail }))
  }
}

/** LocalRooms' part as Connections sees it: arrivals that complete when the test says, and departures. */
export class ControlledRooms {
  readonly calls: string[] = []
  readonly #arrivals: (() => void)[] = []
  arrive(userId: string): Promise<void> {
    this.calls.push(`arrive ${userId}`)
    return new Promise((resolve) => this.#arrivals.push(resolve))
  }
  depart(userId: string): void {
    this.calls.push(`depart ${userId}`)
  }
  async retoken(_socket: unknown, userId: string, before: readonly string[], after: readonly string[]): Promise<void> {
    this.calls.push(`retoken ${userId} ${before.join(',')} -> ${after.join(',')}`)
  }
  /** The oldest arrival's rooms are read and indexed. */
  joined(): void {
    this.#arrivals.shift()!()
  }
}

export function setup(clock = new FakeClock(), inbox = new ControlledInbox(), rooms?: ControlledRooms, tokens?: ConnectionsDeps['tokens']) {
  const registration = new FakeRegistration()
  const resumes: string[] = []
  const resumeErrors: unknown[] = []
  const metrics = {
    pushesWritten: counter(),
    backpressureCloses: counter(),
    welcomes: counter(),
    pongs: counter(),
    framesReceived: counter(),
    closes: {
      byCode: [] as string[],
      /** `<code> <reason>` per close. */
      labels: [] as string[],
      inc: ({ code, reason }: { code: string; reason: string }) => void (metrics.closes.byCode.push(code), metrics.closes.labels.push(`${code} ${reason}`)),
    },
  }
  const connections = new Connections<FakeSocket>({
    nodeId: 'edge-1',
    connIds: new ConnIds('p'),
    registration,
    startedAt: clock.now(),
    maxBackpressureBytes: MAX_BACKLOG,
    maxFramesPerS: MAX_FRAMES_PER_S,
    maxFrameBytes: MAX_FRAME_BYTES,
    metrics,
    clock,
    inbox,
    resumes: { inc: ({ result }) => void resumes.push(result) },
    onResumeError: (err) => void resumeErrors.push(err),
    rooms,
    tokens,
  })
  /** A socket just opened: its registration is in flight. */
  const connect = (userId: string, resume?: { from: Position | undefined }, token?: TokenLifetime & { rooms?: readonly string[] }) => {
    const ws = new FakeSocket(connections.accept(userId, resume, token?.rooms, token), (s, code) => connections.closed(s, code))
    connections.opened(ws)
    return ws
  }
  const connIdOf = (ws: FakeSocket) => `p.${ws.getUserData().seq.toString(36)}`
  /** A socket whose registration completed: welcomed and in the index. */
  const welcomed = async (userId: string) => {
    const ws = connect(userId)
    registration.written(connIdOf(ws))
    await settle()
    return ws
  }
  const send = (ws: FakeSocket, text: string) => connections.received(ws, new TextEncoder().encode(text).buffer as ArrayBuffer, false)
  return { clock, registration, metrics, connections, connect, welcomed, connIdOf, send, inbox, resumes, resumeErrors }
}
