import { z } from 'zod'

import type { PongFrame, Position, PushFrame, WelcomeFrame } from '@switchboard/wire'

// The frames' shapes live in @switchboard/wire (shared with the client SDK); the services'
// builders and the client-frame parser are here.
export type { PongFrame, PushFrame, ServerFrame, WelcomeFrame } from '@switchboard/wire'

/** Frames a client may send: only `ping` in v1. */
export const ClientFrame = z.discriminatedUnion('type', [z.strictObject({ type: z.literal('ping') })])
export type ClientFrame = z.output<typeof ClientFrame>

export const PONG_FRAME = JSON.stringify({ type: 'pong' } satisfies PongFrame)

/** `resume`: for a client that offered `resume.`, whether it recovered (when it gave a position) and the inbox's head. */
export function welcomeFrame(connId: string, nodeId: string, resume?: { recovered: boolean | undefined; head: Position | undefined }): string {
  const { recovered, head } = resume ?? {}
  return JSON.stringify({ type: 'welcome', connId, nodeId, recovered, epoch: head?.epoch, offset: head?.offset } satisfies WelcomeFrame)
}

/**
 * A kept push frame for one recipient: the frame serialized once at the router, with the
 * recipient's position spliced in before its closing brace (epochs are hex, so no escaping).
 */
export function framedAt(frame: string, epoch: string, offset: number): string {
  return `${frame.slice(0, -1)},"epoch":"${epoch}","offset":${offset}}`
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
