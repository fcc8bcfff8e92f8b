import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { mintDevToken } from './secrets.js'

/** The page the README shows, as a file: the README's copy is checked against it. */
export const EXAMPLE_PAGE_PATH = new URL('../example/index.html', import.meta.url)
/** The edge URL the page names; the served copy names the run's first edge instead. */
const PAGE_EDGE_URL = 'ws://127.0.0.1:8080'

export interface ExamplePage {
  url: string
  close(): void
}

/**
 * `npm start`'s browser example, for local runs only: the README's page (naming this run's
 * edge), the SDK's browser bundle, and `/token?user=…`, which mints development tokens as a
 * backend would.
 */
export async function startExamplePage(options: { port: number; wsUrl: string; jwtSecret: string }): Promise<ExamplePage> {
  const page = readFileSync(EXAMPLE_PAGE_PATH, 'utf8').replace(PAGE_EDGE_URL, options.wsUrl)
  const bundle = readFileSync(new URL('./browser/switchboard.min.js', import.meta.resolve('@switchboard/client')))
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const send = (status: number, type: string, body: string | Buffer) => res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body)
    if (req.method !== 'GET') return send(405, 'text/plain', 'GET only')
    if (url.pathname === '/') return send(200, 'text/html; charset=utf-8', page)
    if (url.pathname === '/switchboard.min.js') return send(200, 'text/javascript', bundle)
    if (url.pathname === '/token') {
      const user = url.searchParams.get('user') ?? ''
      if (!/^[\w.@-]{1,64}$/.test(user)) return send(400, 'text/plain', 'user: 1 to 64 letters, digits, _ . @ -')
      void mintDevToken(options.jwtSecret, user).then((token) => send(200, 'text/plain', token))
      return
    }
    send(404, 'text/plain', 'not found')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, '127.0.0.1', resolve)
  })
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}/`, close: () => server.close() }
}
