// One load-generator process: opens `count` authenticated websockets to `url` at once from
// `localAddress`, reports when all are welcomed, then holds them until told to exit.
import WebSocket from 'ws'

const [url, tokensFile, localAddress] = process.argv.slice(2)
const tokens = JSON.parse(await import('node:fs/promises').then((fs) => fs.readFile(tokensFile, 'utf8')))
const sockets = []
let welcomed = 0
let failed = 0
const latencies = []
const done = () => welcomed + failed === tokens.length && process.send({ welcomed, failed, latencies })
for (const token of tokens) {
  const started = performance.now()
  const ws = new WebSocket(`${url}?token=${token}`, { localAddress })
  sockets.push(ws)
  let isWelcomed = false
  ws.once('message', () => {
    isWelcomed = true
    welcomed++
    latencies.push(performance.now() - started)
    done()
  })
  ws.once('error', () => undefined)
  ws.once('close', () => {
    if (isWelcomed) return
    failed++
    done()
  })
}
process.on('message', () => {
  for (const ws of sockets) ws.terminate()
  process.exit(0)
})
