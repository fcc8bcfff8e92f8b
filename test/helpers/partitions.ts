import { RECONNECT_MAX_MS } from '@switchboard/registry'
import type { Api, Client, Frame } from './clients.js'

// What the network-partition suites share: the timing they configure (netns-cluster.ts), the
// bounds derived from it, and two reads of what routers and clients see.
export const LEASE_TTL_MS = 2_000
export const RENEWAL_MS = LEASE_TTL_MS / 3
export const FORWARD_TIMEOUT_MS = 1_000
export const REDIS_COMMAND_TIMEOUT_MS = 500
/** Scheduling on 2 shared cores, process to process: what a bound may be late by. */
export const MARGIN_MS = 500
/**
 * An edge back online after a heal: it retries its renewal at least every renewal interval, and
 * after each failed one drops its Redis connection (a cut one would wait for TCP's backed-off
 * retransmission), so the first renewal after the heal waits at most for the retry, a command
 * timeout, and the reconnect's backoff.
 */
export const BACK_BOUND_MS = RENEWAL_MS + REDIS_COMMAND_TIMEOUT_MS + RECONNECT_MAX_MS + MARGIN_MS
export const BACK_BOUND_TEXT = `renewal ${Math.round(RENEWAL_MS)} + command timeout ${REDIS_COMMAND_TIMEOUT_MS} + reconnect backoff ${RECONNECT_MAX_MS} + ${MARGIN_MS} ms`

/** Which of `userIds` a router sees online. */
export async function online(api: Pick<Api, 'post'>, userIds: string[]): Promise<string[]> {
  return (await api.post('/v1/presence/query', { userIds })).body.online ?? []
}

/** The ids of every push frame `client` has received so far. */
export async function pushIds(client: Client): Promise<string[]> {
  // One ping as a barrier (one per frame would pass EDGE_MAX_FRAMES_PER_S): every frame sent before its pong is in.
  client.send({ type: 'ping' })
  const ids: string[] = []
  for (;;) {
    const frame: Frame = await client.nextFrame()
    if (frame.type === 'pong') return ids
    if (frame.type === 'push') ids.push(String(frame.id))
  }
}
