// One error catalogue (errorTable): the README's error table and close-code table say exactly
// what it says, so the docs cannot drift from the code.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CloseReasons, errorTable } from '@switchboard/protocol'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

t.test('every HTTP error code is in the README\'s error table with its status, and nothing else is', async (t) => {
  const documented = new Map([...readme.matchAll(/^\| (\d{3}) \| `(\w+)` \|/gm)].map((m) => [m[2]!, Number(m[1])]))
  const inTable = new Map(Object.entries(errorTable).flatMap(([code, e]) => ('http' in e ? [[code, e.http] as const] : [])))
  // forbidden is the edge's answer to a refused Origin at the websocket upgrade (README, "Websocket protocol"), not the router's;
  // csrf_invalid is the admin web's (next test).
  for (const [code, status] of inTable) if (code !== 'forbidden' && code !== 'csrf_invalid') t.equal(documented.get(code), status, `${code} documented as ${status}`)
  for (const [code, status] of documented) t.equal(inTable.get(code), status, `README row ${status} ${code} is a code the router answers`)
})

t.test('the admin web\'s own code is in its README section, with its status', async (t) => {
  const admin = readme.slice(readme.indexOf('\n## Admin web'), readme.indexOf('\n## ', readme.indexOf('\n## Admin web') + 1))
  t.match(admin, new RegExp(`${errorTable.csrf_invalid.http} \\(\`csrf_invalid\`\\)`), 'csrf_invalid documented as 403')
})

t.test('every close code an edge sends is in the README\'s close-code table', async (t) => {
  const rows = new Set([...readme.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1])))
  for (const [code, e] of Object.entries(errorTable)) if ('close' in e) t.ok(rows.has(e.close), `${code} (${e.close}) documented`)
})

t.test('the README\'s close-code rows are the endings of CloseReasons (and 1006, no close frame), final exactly where the table says', async (t) => {
  const rows = new Map([...readme.matchAll(/^\| (\d{4}) \| (.*) \| (.*) \|$/gm)].map((m) => [Number(m[1]), m[3]!]))
  const endings = Object.entries(CloseReasons)
  t.same([...rows.keys()].filter((code) => code !== 1006).sort(), endings.map(([, r]) => r.code).sort(), 'one row per ending')
  for (const [reason, { code, then }] of endings) t.equal(rows.get(code)?.includes('do not reconnect'), then === 'final', `${reason} (${code}): ${then}`)
})
