import { z } from 'zod'
import { UserId } from './push-api.js'

/**
 * Router -> edge calls on the edge's internal port. Every call carries
 * `authorization: Bearer <SWITCHBOARD_INTERNAL_TOKEN>`.
 *
 * A delivery body is the push frame exactly as clients receive it, a newline, then the
 * JSON array of recipients on that edge. The frame is serialized once at the router and
 * written to every socket without being parsed again; JSON.stringify never emits a raw
 * newline, so the last newline splits the two parts unambiguously.
 */
export const internalRoutes = {
  deliver: '/internal/deliver',
  broadcast: '/internal/broadcast',
  disconnect: '/internal/disconnect',
} as const

export function encodeDelivery(frame: string, to: readonly string[]): string {
  return `${frame}\n${JSON.stringify(to)}`
}

const Recipients = z.array(UserId).max(100_000)

export function decodeDelivery(body: string): { frame: string; to: string[] } | undefined {
  const cut = body.lastIndexOf('\n')
  if (cut <= 0) return undefined
  let to: unknown
  try {
    to = JSON.parse(body.slice(cut + 1))
  } catch {
    return undefined // the caller answers 400
  }
  const r = Recipients.safeParse(to)
  return r.success ? { frame: body.slice(0, cut), to: r.data } : undefined
}

/** Edge's answer to a delivery: users written to at least one open socket, and the rest. */
export const DeliveryResult = z.strictObject({
  delivered: z.array(z.string()),
  missing: z.array(z.string()),
})
export type DeliveryResult = z.output<typeof DeliveryResult>

export const BroadcastResult = z.strictObject({ connections: z.number().int().min(0) })
export type BroadcastResult = z.output<typeof BroadcastResult>

export const InternalDisconnect = z.strictObject({
  userId: UserId,
  reason: z.string().max(512).optional(),
  /** Only these connections of the user (evictions by the per-user limit or single-session policy); default all. */
  connIds: z.array(z.string().min(1).max(128)).max(64).optional(),
  /** Default 4500 (the disconnect API). */
  code: z.union([z.literal(4500), z.literal(4501), z.literal(4502)]).optional(),
})
export type InternalDisconnect = z.output<typeof InternalDisconnect>

export const DisconnectResult = z.strictObject({ closed: z.number().int().min(0) })
export type DisconnectResult = z.output<typeof DisconnectResult>
