/**
 * A client socket that behaves as uWS's does for the edge: `end()` runs the close handler
 * before it returns, and once closed any use throws, except from inside that close handler.
 */
export abstract class FakeUwsSocket {
  readonly sent: string[] = []
  /** What getBufferedAmount() reports. */
  backlog = 0
  closedWith: { code: number; reason: string } | undefined
  #inCloseHandler = false

  /** What the edge's close handler does with this socket. */
  protected abstract onClose(code: number): void

  getBufferedAmount(): number {
    this.ensureOpen()
    return this.backlog
  }

  cork(cb: () => void): this {
    this.ensureOpen()
    cb()
    return this
  }

  send(message: string): number {
    this.ensureOpen()
    this.sent.push(message)
    return 1
  }

  end(code: number, reason: string): void {
    this.ensureOpen()
    this.closedWith = { code, reason }
    this.#inCloseHandler = true
    try {
      this.onClose(code)
    } finally {
      this.#inCloseHandler = false
    }
  }

  protected ensureOpen(): void {
    if (this.closedWith && !this.#inCloseHandler) throw new Error('Invalid access of closed uWS.WebSocket/SSLWebSocket.')
  }
}
