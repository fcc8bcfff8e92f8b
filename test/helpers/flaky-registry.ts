import { SwitchboardError, type CloseCause } from '@switchboard/protocol'
import { MemoryRegistry, type ConnectionInfo, type Lease, type NodeInfo, type NodeStatus, type EdgeRegistry } from '@switchboard/registry'

type Method = keyof EdgeRegistry

/**
 * A MemoryRegistry that fails on demand, as a Redis outage does (`registry_unavailable`), can
 * hold calls until released, and records every call in order. `identity` is what
 * serverIdentity() answers: change it to play a failover.
 */
export class FlakyRegistry implements EdgeRegistry {
  readonly inner: MemoryRegistry
  /** Calls of these methods throw until removed. */
  readonly failing = new Set<Method>()
  /** Every call as made (failed and held ones too), in order. */
  readonly calls: { method: Method; args: unknown[] }[] = []
  identity = 'server-1'
  readonly #held = new Map<Method, Promise<void>>()

  constructor(options: { now?: () => number } = {}) {
    this.inner = new MemoryRegistry(options)
  }

  /** The arguments of each call of `method`, in order. */
  argsOf(method: Method): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args)
  }

  /** Calls of `method` from now on wait until the returned function is called. */
  hold(method: Method): () => void {
    let release!: () => void
    this.#held.set(method, new Promise<void>((resolve) => (release = resolve)))
    return () => {
      this.#held.delete(method)
      release()
    }
  }

  openLease(node: NodeInfo, ttlMs: number) {
    return this.#call('openLease', [node, ttlMs], () => this.inner.openLease(node, ttlMs))
  }
  renew(lease: Lease, status: NodeStatus) {
    return this.#call('renew', [lease, status], () => this.inner.renew(lease, status))
  }
  closeLease(lease: Lease) {
    return this.#call('closeLease', [lease], () => this.inner.closeLease(lease))
  }
  addConnections(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number) {
    return this.#call('addConnections', [lease, conns, maxPerUser], () => this.inner.addConnections(lease, conns, maxPerUser))
  }
  removeConnection(lease: Lease, userId: string, connId: string, cause?: CloseCause) {
    return this.#call('removeConnection', [lease, userId, connId, cause], () => this.inner.removeConnection(lease, userId, connId, cause))
  }
  resync(lease: Lease, conns: readonly ConnectionInfo[], maxPerUser?: number) {
    return this.#call('resync', [lease, conns, maxPerUser], () => this.inner.resync(lease, conns, maxPerUser))
  }
  revokedBefore(userId: string) {
    return this.#call('revokedBefore', [userId], () => this.inner.revokedBefore(userId))
  }
  serverIdentity() {
    return this.#call('serverIdentity', [], async () => this.identity)
  }
  async #call<T>(method: Method, args: unknown[], run: () => Promise<T>): Promise<T> {
    this.calls.push({ method, args })
    await this.#held.get(method)
    if (this.failing.has(method)) throw new SwitchboardError('registry_unavailable', `${method} failed (test)`)
    return run()
  }
}
