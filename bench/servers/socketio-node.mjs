// The incumbent: one socket.io 4 node with @socket.io/redis-adapter, as teams deploy it. Each
// client authenticates with the same HS256 JWT as Switchboard's (handshake `auth.token`) and
// joins the room `user:<sub>`; backends publish with @socket.io/redis-emitter. Websocket
// transport only (no polling, so no sticky sessions are needed for the comparison).
import { createServer } from 'node:http'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis-v5'
import { jwtVerify } from 'jose'
import { Server } from 'socket.io'

const key = new TextEncoder().encode(process.env.JWT_SECRET)
const pub = new Redis({ host: '127.0.0.1', port: Number(process.env.REDIS_PORT) })
const sub = pub.duplicate()
let messages = 0 // adapter messages this node received from Redis (every node gets every one)
sub.on('messageBuffer', () => messages++)
sub.on('pmessageBuffer', () => messages++)

const http = createServer()
const io = new Server(http, { transports: ['websocket'], serveClient: false, adapter: createAdapter(pub, sub) })
io.use(async (socket, next) => {
  try {
    const { payload } = await jwtVerify(String(socket.handshake.auth?.token ?? ''), key, { algorithms: ['HS256'] })
    socket.data.userId = payload.sub
    next()
  } catch {
    next(new Error('unauthorized'))
  }
})
io.on('connection', (socket) => socket.join(`user:${socket.data.userId}`))

process.on('message', (message) => {
  if (message === 'stats') process.send({ messages, sockets: io.engine.clientsCount })
})
http.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${http.address().port}\n`))
