import { createServer, connect, type Socket } from 'node:net'
import type { TestScope } from './redis.js'

export interface Balancer {
  /** `ws://127.0.0.1:<port>`: what a client connects to, as behind a load balancer. */
  readonly url: string
  /** Connections forwarded so far, by backend (`host:port`). */
  readonly forwarded: Map<string, number>
}

/** A backend: a port on 127.0.0.1, or an address and port (e.g. a host of test/helpers/netns.ts). */
export type Backend = number | { readonly host: string; readonly port: number }

/**
 * A TCP load balancer for tests: each connection goes to the next of `backends()` (round
 * robin), skipping those that refuse; when none accepts, the client's connection is closed.
 */
export async function startBalancer(t: TestScope, backends: () => readonly Backend[]): Promise<Balancer> {
  const forwarded = new Map<string, number>()
  const sockets = new Set<Socket>()
  let next = 0
  const server = createServer((client) => {
    sockets.add(client)
    client.once('close', () => sockets.delete(client))
    const candidates = backends().map((b) => (typeof b === 'number' ? { host: '127.0.0.1', port: b } : b))
    const tryPort = (left: number) => {
      if (left === 0 || candidates.length === 0) return client.destroy()
      const { host, port } = candidates[next++ % candidates.length]!
      const upstream = connect(port, host)
      upstream.once('error', () => tryPort(left - 1))
      upstream.once('connect', () => {
        upstream.removeAllListeners('error')
        forwarded.set(`${host}:${port}`, (forwarded.get(`${host}:${port}`) ?? 0) + 1)
        sockets.add(upstream)
        upstream.once('close', () => sockets.delete(upstream))
        client.pipe(upstream).pipe(client)
        const end = () => (client.destroy(), upstream.destroy())
        client.once('error', end).once('close', end)
        upstream.once('error', end).once('close', end)
      })
    }
    tryPort(candidates.length)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  const { port } = server.address() as { port: number }
  return { url: `ws://127.0.0.1:${port}`, forwarded }
}
