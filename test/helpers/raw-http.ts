// A byte-exact HTTP/1.1 client over node:net, for hostile requests that fetch and
// node:http refuse to send (raw paths, control characters, broken framing).
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  /** Lower-cased names; repeated headers are joined with ", ". */
  headers: Record<string, string>
  body: Buffer
  text: string
}

export interface RawOutcome {
  /** The first final (non-1xx) answer, when a complete one arrived. */
  response?: RawResponse
  /** Bytes the server sent, as latin1, for failure messages. */
  received: string
  /** How the connection ended without a complete answer: 'closed', 'reset' (an error code) or 'timeout'. */
  failure?: string
}

export interface RawRequest {
  method: string
  /** The request target exactly as sent (a latin1 string, or bytes). */
  target: string | Buffer
  /** Sent in order, as is; values may be bytes. */
  headers?: readonly (readonly [string, string | Buffer])[]
  body?: Buffer | string
  /** Adds Host, Content-Length (when there is a body) and Connection: close unless the headers name them. */
  isAutoFramed?: boolean
}

/** Serializes a request byte for byte. */
export function encodeRequest(req: RawRequest): Buffer {
  const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8')
  const headers = [...(req.headers ?? [])]
  if (req.isAutoFramed !== false) {
    const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name)
    if (!has('host')) headers.unshift(['Host', '127.0.0.1'])
    if (body !== undefined && !has('content-length') && !has('transfer-encoding')) headers.push(['Content-Length', String(body.length)])
    if (!has('connection')) headers.push(['Connection', 'close'])
  }
  const parts: Buffer[] = [Buffer.from(`${req.method} `, 'latin1'), Buffer.isBuffer(req.target) ? req.target : Buffer.from(req.target, 'latin1'), Buffer.from(' HTTP/1.1\r\n', 'latin1')]
  for (const [name, value] of headers) {
    parts.push(Buffer.from(`${name}: `, 'latin1'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1'), Buffer.from('\r\n', 'latin1'))
  }
  parts.push(Buffer.from('\r\n', 'latin1'))
  if (body !== undefined) parts.push(body)
  return Buffer.concat(parts)
}

/**
 * Parses the first final answer in `data`; undefined while it is incomplete. `isHead` answers
 * have no body whatever Content-Length says; without a length, the body runs to `isEnded`.
 * A 101 is final: its body is whatever the upgraded connection sent after it.
 */
export function parseResponse(data: Buffer, isHead: boolean, isEnded: boolean): RawResponse | undefined {
  let offset = 0
  for (;;) {
    const end = data.indexOf('\r\n\r\n', offset, 'latin1')
    if (end < 0) return undefined
    const lines = data.subarray(offset, end).toString('latin1').split('\r\n')
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
    if (!match) throw new Error(`not an HTTP answer: ${JSON.stringify(data.subarray(offset, offset + 200).toString('latin1'))}`)
    const status = Number(match[1])
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      if (colon <= 0) continue
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
    const bodyStart = end + 4
    if (status >= 100 && status < 200 && status !== 101) {
      offset = bodyStart // 100 Continue: the final answer follows
      continue
    }
    let body: Buffer | undefined
    if (status === 101) body = data.subarray(bodyStart) // the upgraded protocol's bytes so far
    else if (isHead || status === 204 || status === 304) body = Buffer.alloc(0)
    else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(data.subarray(bodyStart))
    else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'])
      if (data.length - bodyStart >= length) body = data.subarray(bodyStart, bodyStart + length)
    } else if (isEnded) body = data.subarray(bodyStart)
    if (body === undefined) return undefined
    return { status, headers, body, text: body.toString('utf8') }
  }
}

function dechunk(data: Buffer): Buffer | undefined {
  const chunks: Buffer[] = []
  let offset = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset, 'latin1')
    if (lineEnd < 0) return undefined
    const size = parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16)
    if (Number.isNaN(size)) throw new Error('malformed chunked body')
    if (size === 0) return Buffer.concat(chunks)
    if (data.length < lineEnd + 2 + size + 2) return undefined
    chunks.push(data.subarray(lineEnd + 2, lineEnd + 2 + size))
    offset = lineEnd + 2 + size + 2
  }
}

/**
 * Sends `request` on a fresh connection and resolves with the first complete answer, or
 * with how the connection failed. Never rejects. Errors writing the rest of a request the
 * server already answered (it may stop reading, e.g. after 413) do not count as failures.
 */
export function rawRequest(port: number, request: RawRequest | Buffer, { timeoutMs = 10_000, host = '127.0.0.1' } = {}): Promise<RawOutcome> {
  const bytes = Buffer.isBuffer(request) ? request : encodeRequest(request)
  const isHead = !Buffer.isBuffer(request) && request.method === 'HEAD'
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    let data = Buffer.alloc(0)
    let isDone = false
    const finish = (outcome: Omit<RawOutcome, 'received'>) => {
      if (isDone) return
      isDone = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ ...outcome, received: data.toString('latin1') })
    }
    const tryFinish = (isEnded: boolean, failure?: string) => {
      let response: RawResponse | undefined
      try {
        response = parseResponse(data, isHead, isEnded)
      } catch (err) {
        return finish({ failure: (err as Error).message })
      }
      if (response) return finish({ response })
      if (failure) finish({ failure })
    }
    const timer = setTimeout(() => tryFinish(true, 'timeout'), timeoutMs)
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk])
      tryFinish(false)
    })
    socket.on('end', () => tryFinish(true, 'closed'))
    socket.on('close', () => tryFinish(true, 'closed'))
    socket.on('error', (err: NodeJS.ErrnoException) => tryFinish(true, `reset (${err.code ?? err.message})`))
    socket.write(bytes)
  })
}
