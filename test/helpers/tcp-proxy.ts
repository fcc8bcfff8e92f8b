import { connect, createServer, type Socket } from 'node:net'
import type { TestScope } from './redis.js'

export interface TcpProxy {
  /** Where to connect: the proxy's address and port. */
  readonly address: string
  readonly port: number
  /** From now on, what the target sends back is held `delayMs` ± `jitterMs` (uniform), in order. */
  setDelay(delayMs: number, jitterMs: number): void
  /** Drops every connection and closes new ones at once, until `heal`: the target keeps its data. */
  cut(): void
  heal(): void
}

/**
 * A TCP proxy in front of a target (Redis), for faults this kernel cannot make (it has no
 * sch_netem) or that must leave the target's own links alone:
 * - a delay on the target's answers: each chunk it sends is held until now + delay ± jitter,
 *   never before the chunk ahead of it, so the byte stream keeps its order as TCP's does under
 *   netem's default. Requests go through at once: as netem on the target's own interface, the
 *   round trip grows by the delay;
 * - a cut: every connection dropped, new ones closed, until healed.
 * Closes with the test.
 */
export async function startTcpProxy(t: TestScope, listen: string, target: { host: string; port: number }): Promise<TcpProxy> {
  let delayMs = 0
  let jitterMs = 0
  let isCut = false
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    if (isCut) return client.destroy()
    const upstream = connect(target)
    sockets.add(client).add(upstream)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    const queue: { at: number; chunk: Buffer }[] = []
    let timer: NodeJS.Timeout | undefined
    let lastAt = 0
    const pump = () => {
      timer = undefined
      const now = Date.now()
      while (queue.length > 0 && queue[0]!.at <= now) client.write(queue.shift()!.chunk)
      if (queue.length > 0) timer = setTimeout(pump, queue[0]!.at - now)
    }
    upstream.on('data', (chunk: Buffer) => {
      const at = Math.max(lastAt, Date.now() + delayMs + (Math.random() * 2 - 1) * jitterMs)
      lastAt = at
      queue.push({ at, chunk })
      timer ??= setTimeout(pump, Math.max(0, at - Date.now()))
    })
    upstream.on('close', () => clearTimeout(timer))
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, listen, resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)')
  return {
    address: listen,
    port: address.port,
    setDelay: (ms, jitter) => {
      delayMs = ms
      jitterMs = jitter
    },
    cut: () => {
      isCut = true
      for (const s of sockets) s.destroy()
    },
    heal: () => {
      isCut = false
    },
  }
}
