import type { HttpResponse } from 'uWebSockets.js'
import { errorBody, type ErrorCode } from '@switchboard/protocol'

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  503: '503 Service Unavailable',
}

/** Writes a whole JSON answer; safe to call from async code (corks the response). */
export function sendJson(res: HttpResponse, status: number, body: unknown, contentType = 'application/json'): void {
  res.cork(() => {
    res
      .writeStatus(STATUS_TEXT[status] ?? `${status}`)
      .writeHeader('content-type', contentType)
      .end(typeof body === 'string' ? body : JSON.stringify(body))
  })
}

export function sendError(res: HttpResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, errorBody(code, message))
}

/**
 * Reads a request body up to `maxBytes`. Resolves `undefined` if the client went away
 * (the response must not be used then) and rejects with 'too large' past the limit.
 */
export function readBody(res: HttpResponse, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    res.onAborted(() => {
      done = true
      resolve(undefined)
    })
    res.onData((chunk, isLast) => {
      if (done) return
      size += chunk.byteLength
      if (size > maxBytes) {
        done = true
        reject(new Error('too large'))
        return
      }
      chunks.push(Buffer.from(chunk.slice(0))) // uWS reuses the chunk's memory after this call
      if (isLast) {
        done = true
        resolve(Buffer.concat(chunks))
      }
    })
  })
}
