export interface BannerInput {
  mode: string
  wsUrls: string[]
  routerUrl: string
  apiKey: string
  userId: string
  token: string
  /** The browser example page, when it could listen. */
  exampleUrl?: string
  /** The admin web, when it could listen. */
  admin?: { url: string; password: string }
}

/** What a newcomer needs to see a push arrive: where to connect, with what, and how to push. */
export function banner(b: BannerInput): string {
  const push = JSON.stringify({ to: [b.userId], event: 'hello', data: { text: 'hi from Switchboard' } })
  return [
    '',
    `Switchboard is running (${b.mode}).`,
    '',
    ...rows([
      ['router (HTTP API)', b.routerUrl],
      ...b.wsUrls.map((u, i): [string, string] => [`edge ${i + 1} websocket`, `${u}/v1/ws`]),
      ['API key', b.apiKey],
      [`dev token (${b.userId})`, b.token],
      ...(b.admin ? [['admin web', b.admin.url] as [string, string], ['admin password', b.admin.password] as [string, string]] : []),
    ]),
    '',
    'Connect a client (e.g. `npx wscat -c` or a browser):',
    `  ${b.wsUrls[0]}/v1/ws?token=${b.token}`,
    '',
    ...(b.exampleUrl ? [`Or open the browser example (the SDK, signed in as ${b.userId}): ${b.exampleUrl}`, ''] : []),
    `Push to ${b.userId}:`,
    `  curl -s -X POST ${b.routerUrl}/v1/push -H 'authorization: Bearer ${b.apiKey}' -H 'content-type: application/json' -d '${push}'`,
    '',
    'Secrets above are generated for this run only. Ctrl-C stops everything.',
    '',
  ].join('\n')
}

function rows(pairs: [string, string][]): string[] {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 3
  return pairs.map(([label, value]) => `  ${label.padEnd(width)}${value}`)
}
