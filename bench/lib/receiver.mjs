// A presence webhook endpoint served by the bench process: it acknowledges every batch at once
// (204) and counts events by type, each event id once (delivery is at least once).
import { createServer } from 'node:http'

export async function startReceiver() {
  const counts = { 'user.online': 0, 'user.offline': 0 }
  const ids = new Set()
  let lastAt = 0
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      for (const e of JSON.parse(Buffer.concat(chunks).toString()).events) {
        if (ids.has(e.id)) continue
        ids.add(e.id)
        counts[e.type]++
      }
      lastAt = performance.now()
      res.writeHead(204).end()
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}/hooks`, counts, lastAt: () => lastAt, close: () => server.close() }
}
