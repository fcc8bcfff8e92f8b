import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * What a running local Switchboard (`npm start`, `npm run cluster`) leaves for the CLI in
 * another terminal: where the router is and that run's generated secrets. Mode 0600,
 * git-ignored, removed when the run stops.
 */
export interface LocalSession {
  routerUrl: string
  wsUrls: string[]
  apiKey: string
  jwtSecret: string
  pid: number
}

/** `.switchboard/local.json` at the repository root, or SWITCHBOARD_SESSION_FILE. */
export function sessionFile(env: Record<string, string | undefined> = process.env): string {
  return env.SWITCHBOARD_SESSION_FILE || join(fileURLToPath(new URL('../../../', import.meta.url)), '.switchboard', 'local.json')
}

export function readSession(file: string): LocalSession | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LocalSession
  } catch {
    return undefined // no local run: the CLI asks for --url and --key instead
  }
}
