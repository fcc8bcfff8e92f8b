// A minimal websocket client for the load generator: one TCP socket, a hand-written upgrade
// request and a frame parser, nothing else. The `ws` client spends more CPU per connection
// than the servers under test do, and the load generator shares the machine's two cores
// with them, so every microsecond it saves is one the servers get. Both systems are driven
// by this same client.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'

const EMPTY = Buffer.alloc(0)
const KEY = randomBytes(16).toString('base64') // servers do not check the key's uniqueness

/**
 * Opens a websocket. Resolves once the server answered 101; rejects on any other answer,
 * an error or `timeoutMs`. Text messages go to `onText(text, conn)`; pings are answered.
 */
export function openSocket({ port, path, localAddress, onText, onClose, protocols, timeoutMs = 30_000 }) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress, noDelay: true })
    let buffer = EMPTY
    let isOpen = false
    const timer = setTimeout(() => fail(new Error('upgrade timed out')), timeoutMs)
    const fail = (err) => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    const conn = {
      send: (text) => socket.write(maskedFrame(0x1, Buffer.from(text))),
      close: () => socket.destroy(),
      /** Sends a close frame (1000) and resolves once the server closed: every frame it wrote before is read. */
      closeGracefully: () =>
        new Promise((resolve) => {
          socket.once('close', resolve)
          socket.write(maskedFrame(0x8, Buffer.from([0x03, 0xe8])))
        }),
      socket,
    }
    const offered = protocols ? `Sec-WebSocket-Protocol: ${protocols.join(', ')}\r\n` : ''
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${offered}\r\n`))
    socket.on('error', (err) => (isOpen ? undefined : fail(err)))
    socket.on('close', () => (isOpen ? onClose?.() : fail(new Error('closed before the upgrade'))))
    socket.on('data', (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      if (!isOpen) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end < 0) return
        const status = buffer.toString('latin1', 9, 12)
        if (status !== '101') return fail(new Error(`upgrade refused: ${buffer.toString('latin1', 0, end).split('\r\n')[0]}`))
        isOpen = true
        clearTimeout(timer)
        buffer = buffer.subarray(end + 4)
        resolve(conn)
      }
      buffer = readFrames(buffer, conn, onText)
    })
  })
}

/** Consumes every complete frame at the head of `buffer`; returns the rest. */
function readFrames(buffer, conn, onText) {
  const { socket } = conn
  let offset = 0
  for (;;) {
    if (buffer.length - offset < 2) break
    const opcode = buffer[offset] & 0x0f
    let length = buffer[offset + 1] & 0x7f
    let header = 2
    if (length === 126) {
      if (buffer.length - offset < 4) break
      length = buffer.readUInt16BE(offset + 2)
      header = 4
    } else if (length === 127) {
      if (buffer.length - offset < 10) break
      length = Number(buffer.readBigUInt64BE(offset + 2))
      header = 10
    }
    if (buffer.length - offset < header + length) break
    const payload = buffer.subarray(offset + header, offset + header + length)
    if (opcode === 0x1) onText(payload.toString('utf8'), conn)
    else if (opcode === 0x9) socket.write(maskedFrame(0xa, payload))
    else if (opcode === 0x8) socket.end()
    offset += header + length
  }
  return offset === buffer.length ? EMPTY : buffer.subarray(offset)
}

/** A client frame: FIN, the opcode and a zero mask (a valid mask that leaves bytes as they are). */
function maskedFrame(opcode, payload) {
  const length = payload.length
  const header = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length, 0, 0, 0, 0]) : Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff, 0, 0, 0, 0])
  return Buffer.concat([header, payload])
}
