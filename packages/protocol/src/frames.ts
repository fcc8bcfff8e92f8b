import { z } from 'zod'

/** Frames the edge sends. All are JSON text. */
export interface WelcomeFrame {
  type: 'welcome'
  connId: string
  nodeId: string
}
export interface PushFrame {
  type: 'push'
  id: string
  event: string
  data: unknown
  /** ms epoch at the router. */
  ts: number
}
export interface PongFrame {
  type: 'pong'
}
export type ServerFrame = WelcomeFrame | PushFrame | PongFrame

/** Frames a client may send: only `ping` in v1. */
export const ClientFrame = z.discriminatedUnion('type', [z.strictObject({ type: z.literal('ping') })])
export type ClientFrame = z.output<typeof ClientFrame>

export const PONG_FRAME = JSON.stringify({ type: 'pong' } satisfies PongFrame)

export function welcomeFrame(connId: string, nodeId: string): string {
  return JSON.stringify({ type: 'welcome', connId, nodeId } satisfies WelcomeFrame)
}

/** Serialized once per push at the router; edges forward the string as is. */
export function pushFrame(id: string, event: string, data: unknown, ts: number): string {
  return JSON.stringify({ type: 'push', id, event, data: data ?? null, ts } satisfies PushFrame)
}

/** Parses a client's text frame; `undefined` means a protocol violation (close 1008). */
export function parseClientFrame(text: string): ClientFrame | undefined {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return undefined // not JSON: the caller closes with 1008
  }
  const r = ClientFrame.safeParse(json)
  return r.success ? r.data : undefined
}
