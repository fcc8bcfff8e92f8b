// Token lifetime on live connections, without sockets: the expiry heap with a fake clock, and
// the connection lifecycle's expiry closes and refresh frames with a verifier and a revocation
// read the test controls.
import t from 'tap'
import { CloseCode } from '@switchboard/protocol'
import { Expiries } from '../../apps/edge/src/expiries.js'
import type { RefreshResult } from '../../apps/edge/src/connections.js'
import { isRevoked } from '@switchboard/registry'
import { TokenError, type VerifiedToken } from '../../apps/edge/src/tokens.js'
import { FakeClock, settle } from '../helpers/fake-clock.js'
import { ControlledRooms, setup, type FakeSocket } from '../helpers/fake-connections.js'

const TOLERANCE_S = 5

t.test('the heap expires items in deadline order, each once, with one timer armed for the soonest', async (t) => {
  const clock = new FakeClock(0)
  const deadline = new Map<string, number | undefined>()
  const expired: string[] = []
  const q = new Expiries<string>({ clock, deadlineOf: (id) => deadline.get(id), expire: (id) => void expired.push(id) })
  for (const [id, at] of [['c', 3_000], ['a', 1_000], ['b', 2_000], ['d', 10_000]] as const) {
    deadline.set(id, at)
    q.add(id, at)
  }
  t.same(clock.pending, [1_000], 'one timer, for the soonest deadline')
  await clock.advance(2_000)
  t.same(expired, ['a', 'b'])
  // 'c' refreshed to 5 s: its old entry goes stale, a new one is added.
  deadline.set('c', 5_000)
  q.forget()
  q.add('c', 5_000)
  // 'd' closed.
  deadline.set('d', undefined)
  q.forget()
  t.equal(q.size, 1)
  await clock.advance(10_000)
  t.same(expired, ['a', 'b', 'c'], 'c at its new deadline only, d never')
  t.same(clock.pending, [], 'nothing left, no timer')
  t.equal(q.size, 0)
})

t.test('a deadline past setTimeout\'s range is reached by re-arming; an earlier one added later re-arms sooner', async (t) => {
  const clock = new FakeClock(0)
  const expired: number[] = []
  const q = new Expiries<number>({ clock, deadlineOf: (at) => at, expire: (at) => void expired.push(at) })
  const far = 40 * 86_400_000 // past 2^31 - 1 ms
  q.add(far, far)
  t.ok(clock.pending[0]! <= 3_600_000, 'armed within setTimeout\'s range')
  q.add(5_000, 5_000)
  t.same(clock.pending, [5_000])
  await clock.advance(far)
  t.same(expired, [5_000, far])
})

t.test('stale entries are compacted once they are a quarter of the entries, so closed items are not held until their deadline', async (t) => {
  const clock = new FakeClock(0)
  const live = new Set<number>()
  const q = new Expiries<number>({ clock, deadlineOf: (id) => (live.has(id) ? 86_400_000 + id : undefined), expire: () => undefined })
  for (let id = 0; id < 3_000; id++) {
    live.add(id)
    q.add(id, 86_400_000 + id)
  }
  for (let id = 0; id < 2_000; id++) {
    live.delete(id)
    q.forget()
  }
  t.equal(q.size, 1_000)
  t.ok(q.entries < 3_000 && q.entries <= 2 * q.size && q.entries - q.size < 1_024 + q.entries / 4, `closed ones were dropped long before their deadline (${q.entries} held for 1,000 live)`)
  for (let id = 3_000; id < 3_010; id++) {
    live.add(id)
    q.add(id, 86_400_000 + id)
  }
  t.equal(q.size, 1_010)
  const expired: number[] = []
  const q2 = new Expiries<number>({ clock, deadlineOf: (id) => (live.has(id) ? 86_400_000 + id : undefined), expire: (id) => void expired.push(id) })
  for (const id of live) q2.add(id, 86_400_000 + id)
  await clock.advance(86_400_000 + 3_005)
  t.equal(expired.length, 1_006, 'after a compaction the heap still expires in order')
  t.same(expired.slice(0, 2), [2_000, 2_001])
})

t.test('a revocation covers tokens issued at or before its cutoff, and every token without iat', async (t) => {
  t.equal(isRevoked(100, undefined), false, 'no revocation')
  t.equal(isRevoked(100, 100_000), true, 'issued at the cutoff')
  t.equal(isRevoked(100.001, 100_000), false, 'issued a ms after it')
  t.equal(isRevoked(undefined, 100_000), true, 'no iat')
  t.equal(isRevoked(undefined, undefined), false)
})

/** A verifier and revocation read the test controls; tokens are "<userId>:<exp>:<iat>:<rooms>" or "bad". */
function controlledTokens() {
  const results: RefreshResult[] = []
  const expired = { total: 0, inc: () => void expired.total++ }
  let cutoff: Promise<number | undefined> = Promise.resolve(undefined)
  const tokens = {
    verify: (token: string): VerifiedToken => {
      if (token === 'bad') throw new TokenError('bad signature')
      const [userId = '', exp = '0', iat = '', rooms = ''] = token.split(':')
      return { userId, exp: Number(exp), iat: iat === '' ? undefined : Number(iat), rooms: rooms === '' ? [] : rooms.split(',') }
    },
    clockToleranceS: TOLERANCE_S,
    cutoffOf: () => cutoff,
    refreshes: { inc: ({ result }: { result: RefreshResult }) => void results.push(result) },
    expired,
  }
  return { tokens, results, expired, setCutoff: (p: Promise<number | undefined>) => (cutoff = p) }
}

async function welcomedWith(ctx: ReturnType<typeof setup>, userId: string, token: { exp: number; iat?: number; rooms?: string[] }) {
  const ws = ctx.connect(userId, undefined, { exp: token.exp, iat: token.iat, rooms: token.rooms })
  ctx.registration.written(ctx.connIdOf(ws))
  await settle()
  return ws
}

const lastFrame = (ws: FakeSocket) => JSON.parse(ws.sent.at(-1)!) as Record<string, unknown>

t.test('a connection closes with 4002 once its token expires (with the clock tolerance), its cause token_expired', async (t) => {
  const clock = new FakeClock(1_000_000_000)
  const nowS = clock.now() / 1_000
  const { tokens, expired } = controlledTokens()
  const ctx = setup(clock, undefined, undefined, tokens)
  const ws = await welcomedWith(ctx, 'alice', { exp: nowS + 60, iat: nowS })
  const other = await welcomedWith(ctx, 'bob', { exp: nowS + 600, iat: nowS })
  const connId = ctx.connIdOf(ws)
  t.equal(ctx.connections.expiring, 2)
  await ctx.clock.advance((60 + TOLERANCE_S) * 1_000 - 1)
  t.equal(ws.closedWith, undefined, 'not before exp + tolerance')
  await ctx.clock.advance(1)
  t.same(ws.closedWith, { code: CloseCode.tokenExpired, reason: 'token expired' })
  t.ok(ctx.registration.calls.includes(`unregister ${connId} token_expired`), 'its removal says why')
  t.equal(expired.total, 1)
  t.equal(other.closedWith, undefined, 'another connection is untouched')
  t.equal(ctx.connections.expiring, 1)
  other.clientCloses(1000)
  t.equal(ctx.connections.expiring, 0, 'a closed connection leaves the heap')
})

t.test('a refresh moves the expiry, keeps the socket, and is answered refreshed; rooms follow the new claim', async (t) => {
  const clock = new FakeClock(1_000_000_000)
  const nowS = clock.now() / 1_000
  const { tokens, results } = controlledTokens()
  const rooms = new ControlledRooms()
  const ctx = setup(clock, undefined, rooms, tokens)
  const ws = ctx.connect('alice', undefined, { exp: nowS + 60, iat: nowS, rooms: ['r1', 'r2'] })
  ctx.registration.written(ctx.connIdOf(ws))
  await settle()
  rooms.joined()
  await settle()
  ctx.send(ws, JSON.stringify({ type: 'refresh', token: `alice:${nowS + 3_600}:${nowS + 30}:r2,r3` }))
  await settle()
  t.same(lastFrame(ws), { type: 'refreshed', exp: nowS + 3_600 })
  t.same(results, ['ok'])
  t.same(rooms.calls.at(-1), 'retoken alice r1,r2 -> r2,r3')
  t.same(ctx.connections.liveConnections().find((c) => c.userId === 'alice')?.iat, nowS + 30, 'the new iat is what a resync checks against revocations')
  await ctx.clock.advance(120_000)
  t.equal(ws.closedWith, undefined, 'alive past the old exp')
  await ctx.clock.advance((3_600 - 120 + TOLERANCE_S) * 1_000)
  t.equal(ws.closedWith?.code, CloseCode.tokenExpired, 'closed at the new one')
  t.equal(ctx.connections.expiring, 0)
})

t.test('bad refreshes: an error frame and nothing changed, or a close where the connection cannot be trusted', async (t) => {
  const clock = new FakeClock(1_000_000_000)
  const nowS = clock.now() / 1_000
  const { tokens, results, setCutoff } = controlledTokens()
  const ctx = setup(clock, undefined, undefined, tokens)
  const refresh = (ws: FakeSocket, token: string) => ctx.send(ws, JSON.stringify({ type: 'refresh', token }))

  const a = await welcomedWith(ctx, 'alice', { exp: nowS + 60, iat: nowS })
  const aId = ctx.connIdOf(a)
  refresh(a, 'bad')
  t.match(lastFrame(a), { type: 'error', code: 'invalid_token' })
  t.equal(a.getUserData().expS, nowS + 60, 'the expiry stays')

  setCutoff(Promise.reject(new Error('redis down')))
  refresh(a, `alice:${nowS + 600}:${nowS + 1}`)
  await settle()
  t.match(lastFrame(a), { type: 'error', code: 'refresh_unavailable' })
  t.equal(a.closedWith, undefined)

  setCutoff(Promise.resolve(clock.now()))
  refresh(a, `alice:${nowS + 600}:${nowS - 10}`)
  await settle()
  t.same(a.closedWith, { code: CloseCode.revoked, reason: 'token revoked' }, 'a token issued before the revocation closes it: 4503')
  t.ok(ctx.registration.calls.includes(`unregister ${aId} revoked`))

  setCutoff(Promise.resolve(undefined))
  const b = await welcomedWith(ctx, 'bob', { exp: nowS + 60, iat: nowS })
  const c = await welcomedWith(ctx, 'carol', { exp: nowS + 60, iat: nowS })
  refresh(b, `mallory:${nowS + 600}:${nowS}`)
  t.equal(b.closedWith?.code, CloseCode.protocolViolation, "another user's token closes the socket")
  t.equal(c.closedWith, undefined, 'and no other')
  t.same(results, ['invalid', 'unavailable', 'revoked', 'other_user'])
})

t.test('a refresh before the welcome is answered right after it', async (t) => {
  const clock = new FakeClock(1_000_000_000)
  const nowS = clock.now() / 1_000
  const { tokens } = controlledTokens()
  const ctx = setup(clock, undefined, undefined, tokens)
  const ws = ctx.connect('alice', undefined, { exp: nowS + 60, iat: nowS })
  ctx.send(ws, JSON.stringify({ type: 'refresh', token: `alice:${nowS + 600}:${nowS}` }))
  await settle()
  t.same(ws.sent, [], 'nothing before the welcome')
  ctx.registration.written(ctx.connIdOf(ws))
  await settle()
  t.equal(JSON.parse(ws.sent[0]!).type, 'welcome')
  t.same(JSON.parse(ws.sent[1]!), { type: 'refreshed', exp: nowS + 600 })
})

t.test('a revocation closes the user\'s sockets, welcomed or still registering, and no one else\'s', async (t) => {
  const clock = new FakeClock(1_000_000_000)
  const nowS = clock.now() / 1_000
  const { tokens } = controlledTokens()
  const ctx = setup(clock, undefined, undefined, tokens)
  const welcomed = await welcomedWith(ctx, 'alice', { exp: nowS + 60, iat: nowS })
  const registering = ctx.connect('alice', undefined, { exp: nowS + 60, iat: nowS })
  const registeringId = ctx.connIdOf(registering)
  const bob = await welcomedWith(ctx, 'bob', { exp: nowS + 60, iat: nowS })
  t.equal(ctx.connections.revokeUser('alice', 'signed out'), 2)
  t.same(welcomed.closedWith, { code: CloseCode.revoked, reason: 'signed out' })
  t.same(registering.closedWith, { code: CloseCode.revoked, reason: 'signed out' })
  t.equal(bob.closedWith, undefined)
  ctx.registration.written(registeringId)
  await settle()
  t.same(registering.sent, [], 'the registering one is never welcomed')
})
