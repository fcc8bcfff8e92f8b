import * as lua from './scripts/lua.js'
import type { LuaScript } from './scripts/lua.js'
import type { LiveNode } from './registry.js'

/**
 * The routers' view of which incarnations hold a lease. Refreshed in full at most every
 * `refreshMs`; an incarnation met in an entry but unknown here, or whose cached lease has
 * passed its expiry, is checked against Redis before the entry is used, so a new node is
 * seen at once and a dead one never past its expiry.
 */
export class LiveView {
  #nodes = new Map<string, LiveNode>()
  /** Checked and found without a lease since the last full refresh. */
  #dead = new Set<string>()
  /** Redis clock minus local clock, ms. */
  #offsetMs = 0
  #refreshedAt = 0
  #refreshing: Promise<LiveNode[]> | undefined

  constructor(
    private readonly run: (script: LuaScript, args: readonly (string | number)[]) => Promise<unknown>,
    private readonly refreshMs: number,
  ) {}

  async ensureFresh(): Promise<void> {
    if (Date.now() - this.#refreshedAt >= this.refreshMs) await this.refresh()
  }

  refresh(): Promise<LiveNode[]> {
    this.#refreshing ??= this.#fetchAll().finally(() => (this.#refreshing = undefined))
    return this.#refreshing
  }

  async resolve(incIds: Iterable<string>): Promise<void> {
    const unknown = [...incIds].filter((id) => !this.get(id) && !this.#dead.has(id))
    if (unknown.length === 0) return
    const reply = (await this.run(lua.check, unknown)) as string[]
    this.#setClock(Number(reply[0]))
    unknown.forEach((incId, i) => {
      const node = parseNode(incId, reply[1 + 2 * i], reply[2 + 2 * i])
      if (node && node.expiresAt > this.#redisNow()) this.#nodes.set(incId, node)
      else this.#dead.add(incId)
    })
  }

  /** The incarnation if its lease is unexpired by Redis' clock as of now. */
  get(incId: string): LiveNode | undefined {
    const node = this.#nodes.get(incId)
    return node && node.expiresAt > this.#redisNow() ? node : undefined
  }

  async #fetchAll(): Promise<LiveNode[]> {
    const reply = (await this.run(lua.live, [])) as string[]
    this.#setClock(Number(reply[0]))
    const nodes = new Map<string, LiveNode>()
    for (let i = 1; i + 2 < reply.length; i += 3) {
      const node = parseNode(reply[i]!, reply[i + 1], reply[i + 2])
      if (node) nodes.set(node.incId, node)
    }
    this.#nodes = nodes
    this.#dead.clear()
    this.#refreshedAt = Date.now()
    return [...nodes.values()]
  }

  #setClock(redisNowMs: number): void {
    this.#offsetMs = redisNowMs - Date.now()
  }

  #redisNow(): number {
    return Date.now() + this.#offsetMs
  }
}

function parseNode(incId: string, expiry: string | undefined, info: string | undefined): LiveNode | undefined {
  if (!expiry || !info) return undefined
  try {
    const n = JSON.parse(info) as Omit<LiveNode, 'incId' | 'expiresAt'>
    return { incId, expiresAt: Number(expiry), nodeId: n.nodeId, url: n.url, startedAt: n.startedAt, connections: n.connections, draining: n.draining }
  } catch {
    return undefined // written only by openLease/renew; a corrupt value hides one node rather than failing every lookup
  }
}

