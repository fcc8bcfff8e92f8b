// The floor: a bare uWebSockets.js server. Sockets sit in a Map by user id; POST /push
// {"to":[ids],"frame":"..."} writes the frame to each recipient. No auth, no registry, no
// validation: the cheapest a push can be, to measure what Switchboard's layers cost on top.
import { App, us_socket_local_port } from 'uWebSockets.js'

const sockets = new Map()
const app = App()
app.ws('/ws', {
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    const userId = new URLSearchParams(req.getQuery()).get('user') ?? ''
    res.upgrade({ userId }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context)
  },
  open: (ws) => {
    sockets.set(ws.getUserData().userId, ws)
    ws.send('{"type":"welcome"}')
  },
  close: (ws) => sockets.delete(ws.getUserData().userId),
})
app.post('/push', (res) => {
  const chunks = []
  res.onAborted(() => undefined)
  res.onData((chunk, isLast) => {
    chunks.push(Buffer.from(chunk))
    if (!isLast) return
    const { to, frame } = JSON.parse(Buffer.concat(chunks).toString())
    let delivered = 0
    for (const id of to) if (sockets.get(id)?.send(frame) !== undefined) delivered++
    res.cork(() => res.writeHeader('content-type', 'application/json').end(`{"delivered":${delivered}}`))
  })
})
app.listen('127.0.0.1', 0, (token) => {
  if (!token) throw new Error('bare uWS could not listen')
  process.stdout.write(`listening ${us_socket_local_port(token)}\n`)
})
process.on('message', (message) => {
  if (message === 'stats') process.send({ sockets: sockets.size })
})
