import { randomBytes } from 'node:crypto'

/**
 * Connection ids of one edge incarnation: `<prefix>.<seq in base 36>`, unique across edges and
 * restarts by the prefix (start time and random bytes). A socket keeps only its `seq`, a small
 * integer, and the string is built when needed (welcome, registry writes), so no id string
 * lives as long as the socket.
 */
export class ConnIds {
  readonly prefix: string
  #next = 0

  constructor(prefix = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`) {
    this.prefix = prefix
  }

  nextSeq(): number {
    return this.#next++
  }

  format(seq: number): string {
    return `${this.prefix}.${seq.toString(36)}`
  }

  /** The seq of a connId this incarnation issued; undefined for any other string. */
  parse(connId: string): number | undefined {
    const dot = this.prefix.length
    if (connId.length <= dot + 1 || connId.charCodeAt(dot) !== 46 /* . */ || !connId.startsWith(this.prefix)) return undefined
    const tail = connId.slice(dot + 1)
    const seq = parseInt(tail, 36)
    // parseInt stops at the first non-digit: only the exact canonical form is ours.
    return Number.isSafeInteger(seq) && seq >= 0 && seq.toString(36) === tail ? seq : undefined
  }
}
