import { createHmac } from 'node:crypto'
import t from 'tap'
import { SignJWT, base64url, type KeyInput } from 'jose'
import { createTokenVerifier } from '@switchboard/edge'

const secret = 's'.repeat(32)
const now = 1_800_000_000
const verify = createTokenVerifier({ secret }, { algorithms: ['HS256'], clockToleranceS: 5 }, () => now)
const sign = (claims: Record<string, unknown>, alg = 'HS256', key = secret) =>
  new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(key))
/** A token with any header, signed with HS256 over whatever the header claims. */
const forge = (header: object, claims: object, key = secret) => {
  const head = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`
  return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`
}

t.test('a valid token gives its subject', async (t) => {
  t.same(verify(await sign({ sub: 'alice', exp: now + 60 })), { userId: 'alice', exp: now + 60, iat: undefined, rooms: [] })
  t.same(verify(await sign({ sub: 'alice', exp: now + 60, iat: now - 0.25 })), { userId: 'alice', exp: now + 60, iat: now - 0.25, rooms: [] }, 'exp and iat (fractional) are given to the connection')
  t.equal(verify(await sign({ sub: 'bob', exp: now - 4 })).userId, 'bob', 'within the clock tolerance')
  t.equal(verify(await sign({ sub: 'carol', exp: now + 60, nbf: now + 4 })).userId, 'carol')
  t.same(verify(await sign({ sub: 'dan', exp: now + 60, rooms: ['meeting-42', 'chat/7', 'meeting-42'] })).rooms, ['meeting-42', 'chat/7'], 'the rooms claim, each once')
})

t.test('every bad token is refused', async (t) => {
  const valid = await sign({ sub: 'alice', exp: now + 60 })
  const [h, p] = valid.split('.')
  const cases: Record<string, string> = {
    'expired': await sign({ sub: 'alice', exp: now - 6 }),
    'no exp': await sign({ sub: 'alice' }),
    'exp not a number': await sign({ sub: 'alice', exp: String(now + 60) }),
    'not yet valid': await sign({ sub: 'alice', exp: now + 60, nbf: now + 60 }),
    'no sub': await sign({ exp: now + 60 }),
    'empty sub': await sign({ sub: '', exp: now + 60 }),
    'sub too long': await sign({ sub: 'x'.repeat(257), exp: now + 60 }),
    'other secret': await sign({ sub: 'alice', exp: now + 60 }, 'HS256', 'o'.repeat(32)),
    'HS384': await sign({ sub: 'alice', exp: now + 60 }, 'HS384'),
    'alg none': `${base64url.encode('{"alg":"none"}')}.${p}.`,
    'alg none, signed anyway': forge({ alg: 'none' }, { sub: 'alice', exp: now + 60 }),
    'RS256 header over an HMAC': forge({ alg: 'RS256' }, { sub: 'alice', exp: now + 60 }),
    'tampered payload': `${h}.${base64url.encode('{"sub":"mallory","exp":9999999999}')}.${valid.split('.')[2]}`,
    'signature with extra characters': `${valid}A`,
    'two parts': `${h}.${p}`,
    'garbage': 'not-a-token',
    'empty': '',
    'header not JSON': `${base64url.encode('nope')}.${p}.x`,
  }
  for (const [name, token] of Object.entries(cases)) t.throws(() => verify(token), name)
})

const tokens = new Map<string, string>()
for (const rooms of ['meeting', ['a', 'b', 'c'], ['toolongname'], [''], [1], ['a\u0000'], [null], { a: 1 }]) tokens.set(JSON.stringify(rooms), await sign({ sub: 'alice', exp: now + 60, rooms }))
tokens.set('ok', await sign({ sub: 'alice', exp: now + 60, rooms: ['a', 'b'] }))

t.test('a rooms claim out of bounds refuses the token, with a message the client may see', async (t) => {
  const bounded = createTokenVerifier({ secret }, { algorithms: ['HS256'], clockToleranceS: 5, maxRooms: 2, maxRoomNameLength: 8 }, () => now)
  const message = 'token: rooms must be an array of at most 2 room names of 1 to 8 printable characters'
  for (const rooms of ['meeting', ['a', 'b', 'c'], ['toolongname'], [''], [1], ['a\u0000'], [null], { a: 1 }]) {
    t.throws(() => bounded(tokens.get(JSON.stringify(rooms))!), { name: 'TokenError', publicMessage: message }, JSON.stringify(rooms))
  }
  t.same(bounded(tokens.get('ok')!).rooms, ['a', 'b'])
})

t.test('RS256 and ES256 with a public key or a JWKS entry; no algorithm confusion', async (t) => {
  const { generateKeyPair, exportSPKI } = await import('jose')
  const { createPublicKey } = await import('node:crypto')
  const rsa = await generateKeyPair('RS256', { extractable: true })
  const ec = await generateKeyPair('ES256', { extractable: true })
  const rsaPublic = createPublicKey(await exportSPKI(rsa.publicKey))
  const ecPublic = createPublicKey(await exportSPKI(ec.publicKey))
  const jwks = new Map([['ec-1', ecPublic]])
  const rules = { algorithms: ['RS256', 'ES256'] as const, clockToleranceS: 5, issuer: 'https://auth.example', audience: 'switchboard' }
  const v = createTokenVerifier({ publicKey: rsaPublic, jwks }, { ...rules, algorithms: [...rules.algorithms] }, () => now)
  const claims = { sub: 'alice', exp: now + 60, iss: 'https://auth.example', aud: ['other', 'switchboard'] }
  const signed = (key: KeyInput, alg: string, kid?: string, body: object = claims) =>
    new SignJWT({ ...body }).setProtectedHeader(kid ? { alg, kid } : { alg }).sign(key)

  t.equal(v(await signed(rsa.privateKey, 'RS256')).userId, 'alice', 'RS256 with the configured public key')
  t.equal(v(await signed(ec.privateKey, 'ES256', 'ec-1')).userId, 'alice', 'ES256 with the JWKS key named by kid')
  t.throws(() => v(forge({ alg: 'HS256' }, claims, 'x'.repeat(32))), 'HS256 is not in the allow-list')
  const pem = await exportSPKI(rsa.publicKey)
  const confused = createTokenVerifier({ secret: 's'.repeat(32), publicKey: rsaPublic }, { algorithms: ['HS256', 'RS256'], clockToleranceS: 5 }, () => now)
  t.throws(() => confused(forge({ alg: 'HS256' }, claims, pem)), 'an HMAC made with the public key is refused')
  const refused: Record<string, string> = {
    'ES256 without a kid does not fall back to the RSA key': await signed(ec.privateKey, 'ES256'),
    'unknown kid': await signed(ec.privateKey, 'ES256', 'unknown'),
    'token for another audience': await signed(rsa.privateKey, 'RS256', undefined, { ...claims, aud: 'other' }),
    'another issuer': await signed(rsa.privateKey, 'RS256', undefined, { ...claims, iss: 'https://evil.example' }),
    'missing iss and aud': await signed(rsa.privateKey, 'RS256', undefined, { sub: 'alice', exp: now + 60 }),
  }
  for (const [name, token] of Object.entries(refused)) t.throws(() => v(token), name)
  const good = await signed(rsa.privateKey, 'RS256')
  // Changed inside the signature: its last character carries bits a decoder ignores, so
  // rewriting the end could leave the signature intact (about 1 run in 256).
  const at = good.lastIndexOf('.') + 10
  t.throws(() => v(`${good.slice(0, at)}${good[at] === 'A' ? 'B' : 'A'}${good.slice(at + 1)}`), 'tampered signature')
})

t.test('a token offered as a subprotocol is taken, and never selected', async (t) => {
  const { tokenFromProtocols } = await import('@switchboard/edge')
  t.same(tokenFromProtocols('switchboard.v1, bearer.abc.def.ghi'), { token: 'abc.def.ghi', selected: 'switchboard.v1' })
  t.same(tokenFromProtocols('bearer.tok'), { token: 'tok', selected: '' })
  t.same(tokenFromProtocols(''), { token: undefined, selected: '' })
  t.same(tokenFromProtocols('chat, switchboard.v1'), { token: undefined, selected: 'switchboard.v1' })
})

t.test('a resume position offered as a subprotocol is taken, never selected; a malformed one is ignored', async (t) => {
  const { tokenFromProtocols } = await import('@switchboard/edge')
  t.same(tokenFromProtocols('resume.ab12.7, switchboard.v1, bearer.tok'), { token: 'tok', selected: 'switchboard.v1', resume: { from: { epoch: 'ab12', offset: 7 } } })
  t.same(tokenFromProtocols('resume.start, bearer.tok'), { token: 'tok', selected: '', resume: { from: undefined } }, 'no position yet')
  t.same(tokenFromProtocols('resume.nothex.7, bearer.tok'), { token: 'tok', selected: '', resume: undefined }, 'malformed: no resume, and not selected either')
})

t.test('a token valid for longer than TOKEN_MAX_LIFETIME_S is refused, with or without iat', async (t) => {
  const strict = createTokenVerifier({ secret }, { algorithms: ['HS256'], clockToleranceS: 5, maxLifetimeS: 3_600 }, () => now)
  t.equal(strict(await sign({ sub: 'a', iat: now - 100, exp: now - 100 + 3_600 })).userId, 'a', 'exactly the maximum, from iat')
  t.throws(() => strict(forgeLong(now - 100, now - 100 + 3_601)), /lifetime too long/, 'one second more, from iat')
  t.equal(strict(await sign({ sub: 'a', exp: now + 3_600 })).userId, 'a', 'without iat: from now')
  t.throws(() => strict(forgeLong(undefined, now + 3_601)), /lifetime too long/, 'without iat, one second more')
  try {
    strict(forgeLong(undefined, now + 7_200))
  } catch (err) {
    t.match((err as { publicMessage?: string }).publicMessage, /at most 3600 s from iat to exp/, 'the client is told the bound')
  }
  // Issued in the past with a long life: still too long, although little of it remains.
  t.throws(() => strict(forgeLong(now - 86_400, now + 60)), /lifetime too long/)
  t.throws(() => strict(forge({ alg: 'HS256' }, { sub: 'a', exp: now + 60, iat: 'yesterday' })), /bad iat/)
})

function forgeLong(iat: number | undefined, exp: number): string {
  return forge({ alg: 'HS256' }, iat === undefined ? { sub: 'a', exp } : { sub: 'a', iat, exp })
}
