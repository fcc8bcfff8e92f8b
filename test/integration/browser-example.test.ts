// The README's browser example, as a newcomer runs it: `npm start` serves the page, Chromium
// (chromium-headless-shell, puppeteer-core) opens it, a push from the banner's API key shows
// up on the page, and after leaving and coming back the kept push sent meanwhile is
// recovered. The README's copy of the page is the file npm start serves.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import puppeteer from 'puppeteer-core'
import { EXAMPLE_PAGE_PATH } from '../../apps/local/src/example-page.js'
import { eventually } from '../helpers/clients.js'
import { launchLocal } from '../helpers/processes.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium-headless-shell'

t.test('the README shows the page npm start serves, verbatim', async (t) => {
  const [readme, page] = await Promise.all([readFile(new URL('../../README.md', import.meta.url), 'utf8'), readFile(EXAMPLE_PAGE_PATH, 'utf8')])
  t.ok(readme.includes(`\`\`\`html\n${page}\`\`\``), 'README has apps/local/example/index.html in an html block')
})

t.test('npm start, then the browser example: connected, a push shows, a kept push missed while away is recovered', async (t) => {
  const { out } = await launchLocal(t, 'main', [], { ROUTER_PORT: '0', EDGE_PORT: '0', EDGE_INTERNAL_PORT: '0' })
  const exampleUrl = out.match(/open the browser example .*: (http:\/\/\S+)/)?.[1]
  const curl = out.match(/curl -s -X POST (\S+) -H 'authorization: Bearer (\S+)'/)
  if (!t.ok(exampleUrl && curl, 'the banner names the example page and the API')) return
  const push = (body: object) =>
    fetch(curl![1]!, { method: 'POST', headers: { authorization: `Bearer ${curl![2]}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<{ delivered: string[]; kept?: string[] }>)

  const browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
  page.on('pageerror', (e) => errors.push(String(e)))
  const log = () => page.$eval('#log', (el) => el.textContent ?? '')

  await page.goto(exampleUrl!)
  await eventually(async () => (await log()).includes('connected'))
  t.same((await push({ to: ['alice'], event: 'hello', data: { text: 'hi' }, keep: true })).delivered, ['alice'])
  await eventually(async () => (await log()).includes('push hello {"text":"hi"} (kept #1)'))

  await page.goto('about:blank') // the tab leaves: its socket closes
  const routerUrl = new URL(curl![1]!).origin
  await eventually(async () => {
    const res = await fetch(`${routerUrl}/v1/presence/alice`, { headers: { authorization: `Bearer ${curl![2]}` } })
    return ((await res.json()) as { online: boolean }).online === false
  })
  t.same((await push({ to: ['alice'], event: 'hello', data: { text: 'while away' }, keep: true })).kept, ['alice'], 'kept: alice is away')
  await page.goto(exampleUrl!)
  await eventually(async () => (await log()).includes('push hello {"text":"while away"} (kept #2)'))
  t.match(await log(), /^connecting\nconnected\npush hello \{"text":"while away"\} \(kept #2\)\n$/, 'resumed from sessionStorage: the missed push, once')
  t.same(errors, [], 'no console errors')
})
