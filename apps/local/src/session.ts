import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { sessionFile, type LocalSession } from '@switchboard/cli'
import { banner } from './banner.js'
import { startExamplePage, type ExamplePage } from './example-page.js'
import { mintDevToken, type DevSecrets } from './secrets.js'
import type { Launch } from './standalone.js'

/**
 * Runs a launch the way both local commands do: Ctrl-C stops everything (even before it is
 * up), the banner shows how to connect and push, and the session file is there while it runs.
 */
export async function runLocal(launch: Launch, secrets: DevSecrets, describe: (edges: number) => string, cleanup: () => Promise<void> = async () => {}): Promise<void> {
  const file = sessionFile()
  let example: ExamplePage | undefined
  const stop = () =>
    void launch
      .stop()
      .then(() => example?.close())
      .then(cleanup)
      .finally(() => {
        rmSync(file, { force: true })
        process.exit(0)
      })
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const userId = 'alice'
  try {
    const running = await launch.ready
    mkdirSync(dirname(file), { recursive: true })
    const { admin, ...endpoints } = running
    writeFileSync(file, JSON.stringify({ ...endpoints, apiKey: secrets.apiKey, jwtSecret: secrets.jwtSecret, pid: process.pid } satisfies LocalSession), { mode: 0o600 })
    chmodSync(file, 0o600)
    const token = await mintDevToken(secrets.jwtSecret, userId)
    example = await startExamplePage({ port: Number(process.env.LOCAL_EXAMPLE_PORT ?? 8090), wsUrl: running.wsUrls[0]!, jwtSecret: secrets.jwtSecret }).catch((err: unknown) => {
      process.stderr.write(`switchboard: no browser example (${(err as Error).message}); set LOCAL_EXAMPLE_PORT to a free port\n`)
      return undefined
    })
    process.stdout.write(banner({ mode: describe(running.wsUrls.length), ...endpoints, admin, apiKey: secrets.apiKey, userId, token, exampleUrl: example?.url }))
  } catch (err) {
    process.stderr.write(`switchboard: ${(err as Error).message}\n`)
    await launch.stop()
    await cleanup()
    process.exit(1)
  }
}
