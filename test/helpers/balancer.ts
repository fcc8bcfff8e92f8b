import { createServer, connect, type Socket } from 'node:net'
import type { TestScope } from './redis.js'

export interface Balancer {
  /** `ws://127.0.0.1:<port>`: what a client connects to, as behind a load balancer. */
  readonly url: string
  /** Connections forwarded so far, by backend port. */
  readonly forwarded: Map<number, number>
}

/**
 * A TCP load balancer for tests: each connection goes to the next of `ports()` (round robin),
 * skipping ports that refuse; when none accepts, the client's connection is closed.
 */
export async function startBalancer(t: TestScope, ports: () => readonly number[]): Promise<Balancer> {
  const forwarded = new Map<number, number>()
  const sockets = new Set<Socket>()
  let next = 0
  const server = createServer((client) => {
    sockets.add(client)
    client.once('close', () => sockets.delete(client))
    const candidates = [...ports()]
    const tryPort = (left: number) => {
      if (left === 0 || candidates.length === 0) return client.destroy()
      const port = candidates[next++ % candidates.length]!
      const upstream = connect(port, '127.0.0.1')
      upstream.once('error', () => tryPort(left - 1))
      upstream.once('connect', () => {
        upstream.removeAllListeners('error')
        forwarded.set(port, (forwarded.get(port) ?? 0) + 1)
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
