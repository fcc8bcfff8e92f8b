import t from 'tap'
import type { Located } from '@switchboard/registry'
import { planDelivery, settleDelivery } from '@switchboard/router'

const at = (url: string, connId = `${url}-c`): Located => ({ url, connId, nodeId: url, incId: `${url}-i`, since: 0 })

t.test('groups recipients by edge, once per edge, and lists offline ones', async (t) => {
  const where = new Map([
    ['a', [at('e1'), at('e2'), at('e1', 'second-device')]],
    ['c', [at('e1')]],
  ])
  const plan = planDelivery(new Set(['a', 'b', 'c', 'a']), where)
  t.same(Object.fromEntries(plan.byEdge), { e1: ['a', 'c'], e2: ['a'] })
  t.same(plan.offline, ['b'])
})

t.test('settles every recipient into exactly one list', async (t) => {
  const answer = settleDelivery(['a', 'b', 'c', 'd'], [
    { users: ['a', 'b'], delivered: ['a'] }, // b's socket closed meanwhile: offline
    { users: ['a', 'c'], failed: true }, // a was delivered elsewhere: still delivered
  ])
  t.same(answer, { delivered: ['a'], offline: ['b', 'd'], failed: ['c'] })
})
