// The backend client's webhook verifier against the router's signer: two implementations of
// the Standard Webhooks scheme that must agree, and every way a delivery is refused.
import t from 'tap'
import { WebhookVerificationError, verifyPresenceWebhook } from '@switchboard/backend'
import { signatureHeaders } from '../../apps/router/src/presence/webhook-signature.js'

const A = `whsec_${Buffer.alloc(32, 1).toString('base64')}`
const B = `whsec_${Buffer.alloc(32, 2).toString('base64')}`
const C = `whsec_${Buffer.alloc(32, 3).toString('base64')}`
const event = { id: '1-0.3', type: 'user.online', userId: 'ü', ver: 1, cause: 'connect', connections: 1, ts: 1 }
const body = JSON.stringify({ events: [event] })
const now = 1_800_000_000

t.test('a batch signed by the router verifies, with either secret of a rotation', async (t) => {
  const headers = signatureHeaders([A, B], 'msg_1', now, body)
  t.same(verifyPresenceWebhook(A, { ...headers }, body, { nowS: now }), [event])
  t.same(verifyPresenceWebhook([C, B], new Headers({ ...headers }), Buffer.from(body), { nowS: now }), [event], 'fetch Headers, a Buffer body, a list of secrets')
})

t.test('every bad delivery is refused with a WebhookVerificationError', async (t) => {
  const headers = { ...signatureHeaders([A], 'msg_1', now, body) }
  const cases: [string, () => unknown][] = [
    ['unknown secret', () => verifyPresenceWebhook(C, headers, body, { nowS: now })],
    ['tampered body', () => verifyPresenceWebhook(A, headers, body.replace('ü', 'u'), { nowS: now })],
    ['another id', () => verifyPresenceWebhook(A, { ...headers, 'webhook-id': 'msg_2' }, body, { nowS: now })],
    ['stale', () => verifyPresenceWebhook(A, headers, body, { nowS: now + 301 })],
    ['from the future', () => verifyPresenceWebhook(A, headers, body, { nowS: now - 301 })],
    ['no signature', () => verifyPresenceWebhook(A, { ...headers, 'webhook-signature': undefined }, body, { nowS: now })],
    ['v2 only', () => verifyPresenceWebhook(A, { ...headers, 'webhook-signature': headers['webhook-signature'].replace('v1,', 'v2,') }, body, { nowS: now })],
    ['not a whsec secret', () => verifyPresenceWebhook('secret', headers, body, { nowS: now })],
  ]
  for (const [name, call] of cases) t.throws(call, WebhookVerificationError, name)
  const notJson = 'not json'
  t.throws(() => verifyPresenceWebhook(A, { ...signatureHeaders([A], 'm', now, notJson) }, notJson, { nowS: now }), WebhookVerificationError, 'signed but not JSON')
  const noEvents = '{"x":1}'
  t.throws(() => verifyPresenceWebhook(A, { ...signatureHeaders([A], 'm', now, noEvents) }, noEvents, { nowS: now }), WebhookVerificationError, 'signed but no events')
})
