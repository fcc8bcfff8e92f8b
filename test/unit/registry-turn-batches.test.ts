import t from 'tap'
import { SwitchboardError } from '@switchboard/protocol'
import { RedisRegistry, type RedisClient } from '@switchboard/registry'

// What a delivery worker asks of Redis in one turn (a pump of every changed partition, then an
// acknowledgement per partition of a delivered batch) goes in a few script calls, against a
// client stand-in that records them. Their effect on a real Redis is the contract suites'.

interface Sent {
  keys: string[]
  args: string[]
}

/** A client that answers each EVALSHA with `answer(call)` and records it. */
function recordingClient(answer: (call: Sent) => unknown): { client: RedisClient; sent: Sent[] } {
  const sent: Sent[] = []
  const evalsha = async (_sha: string, numKeys: number, ...rest: (string | number)[]) => {
    const call = { keys: rest.slice(0, numKeys).map(String), args: rest.slice(numKeys).map(String) }
    sent.push(call)
    return answer(call)
  }
  return { client: { status: 'ready', options: {}, evalsha } as unknown as RedisClient, sent }
}

/** The partition a pump call's n-th group of six keys names ("{pN}"). */
const partitionsOf = (keys: readonly string[]) => keys.filter((_, i) => i % 6 === 0).map((k) => Number(/\{p(\d+)\}/.exec(k)![1]))

t.test('the pumps of one turn go in one script per 16 partitions, each answered with its own events', async (t) => {
  const { client, sent } = recordingClient(({ keys }) => partitionsOf(keys).map((p) => [-1, `${1_000 + p}-0`, ['u', `user-${p}`, 't', '1', 'v', '1', 'c', 'connect', 'n', '1']]))
  const registry = new RedisRegistry(client)
  const partitions = Array.from({ length: 40 }, (_, i) => i * 3)
  const replies = await Promise.all(partitions.map((p) => registry.pump(p, '0-0', 1_000)))
  t.same(sent.map((s) => partitionsOf(s.keys).length), [16, 16, 8], 'three calls for 40 partitions')
  t.same(sent[0]!.args.slice(3, 7), ['0-0', '1000', '0-0', '1000'], 'each partition with its position and count')
  t.same(replies.map((r) => r.events.map((e) => `${e.partition} ${e.userId} ${e.position}`)), partitions.map((p) => [`${p} user-${p} ${1_000 + p}-0`]))
  t.ok(replies.every((r) => r.nextHoldInMs === undefined))
})

t.test('a failed pump call fails each pump it carried as registry_unavailable, and only those', async (t) => {
  const { client } = recordingClient(({ keys }) => {
    if (partitionsOf(keys).includes(0)) throw new Error('boom')
    return partitionsOf(keys).map(() => [-1])
  })
  const registry = new RedisRegistry(client)
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, p) => registry.pump(p, '0-0', 10)))
  const codes = results.map((r) => (r.status === 'rejected' && r.reason instanceof SwitchboardError ? r.reason.code : r.status))
  t.same(codes, [...Array<string>(16).fill('registry_unavailable'), ...Array<string>(4).fill('fulfilled')])
})

t.test("a turn's acknowledgements go in one script, each partition's cursor with its sink and position", async (t) => {
  const { client, sent } = recordingClient(({ keys }) => keys.length)
  const registry = new RedisRegistry(client, { prefix: 'x:' })
  await Promise.all([registry.acknowledge(3, 'feed', '10-1'), registry.acknowledge(9, 'hook', '11-0'), registry.acknowledge(3, 'hook', '12-0')])
  t.same(sent, [{ keys: ['x:{p3}:cur', 'x:{p9}:cur', 'x:{p3}:cur'], args: ['feed', '10-1', 'hook', '11-0', 'hook', '12-0'] }])
})
