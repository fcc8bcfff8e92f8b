// `npm test`'s set-up: the programs the suites need beyond Node, installed with apt-get when
// they are missing and it can (as root, or with sudo that needs no password), printing every
// command it ran. What it cannot install it names, with the command to install it, and the
// run goes on: the tests that need it fail or skip with their own message. Under CI (CI set)
// anything still missing fails the run instead, as the partition suites do.
//   node scripts/setup-test-env.mjs   (npm test and .ci/run run it)
import { spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * What the suites need beyond Node: a program, the Debian package that has it, the flag that
 * prints its version, and which tests need it. `pathEnv` names a variable that points at the
 * program instead (the browser suites read CHROMIUM_PATH, else this default path).
 */
export const NEEDS = [
  { program: 'redis-server', pkg: 'redis-server', versionFlag: '--version', usedBy: 'the Redis contract suites and every integration suite' },
  { program: 'chromium-headless-shell', pkg: 'chromium-headless-shell', versionFlag: '--version', usedBy: 'the browser suites (puppeteer-core)', pathEnv: 'CHROMIUM_PATH', defaultPath: '/usr/bin/chromium-headless-shell' },
  { program: 'ip', pkg: 'iproute2', versionFlag: '-V', usedBy: 'the network-partition suites (as root)' },
  { program: 'iptables', pkg: 'iptables', versionFlag: '-V', usedBy: 'the network-partition suites (as root)' },
]

const PREFIX = 'setup-test-env:'

/**
 * Checks every need, installs what is missing when it can (`sudo`: an empty array as root,
 * ['sudo', '-n'] with password-less sudo; undefined when it cannot, `cannot` saying why), and reports.
 * `locate` finds a need's program (its path or undefined); `run` runs a command, resolving
 * with its exit status and output; `log` prints a line. Returns the exit code for the run.
 * @param {{ env: Record<string, string | undefined>, sudo: string[] | undefined, cannot?: string, locate: (need: typeof NEEDS[number]) => string | undefined, run: (argv: string[], env?: Record<string, string>) => { status: number, output: string }, log: (line: string) => void }} deps
 */
export function setUp({ env, sudo, cannot = 'cannot install', locate, run, log }) {
  const missing = () => NEEDS.filter((need) => locate(need) === undefined)
  // A program named by its variable is the user's: a package would not put it there.
  const named = (/** @type {typeof NEEDS[number]} */ need) => need.pathEnv !== undefined && env[need.pathEnv] !== undefined
  let absent = missing()
  if (absent.some((need) => !named(need)) && sudo !== undefined) {
    const apt = (/** @type {string[]} */ args) => {
      const argv = [...sudo, 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args]
      log(`${PREFIX} running: ${argv.join(' ')}`)
      const { status, output } = run(argv)
      if (status !== 0) log(`${PREFIX} failed (exit ${status}): ${output.trim().split('\n').slice(-3).join(' | ')}`)
      return status === 0
    }
    apt(['update', '-qq'])
    // One package at a time: one that the distribution lacks does not stop the others.
    for (const pkg of new Set(absent.filter((need) => !named(need)).map((need) => need.pkg))) apt(['install', '-y', '-qq', pkg])
    absent = missing()
  }
  for (const need of NEEDS) {
    const path = locate(need)
    if (path === undefined) continue
    const version = run([path, need.versionFlag]).output.trim().split('\n')[0]
    log(`${PREFIX} ${need.program}: ${path} (${version})`)
  }
  if (absent.length === 0) return 0
  const why = sudo === undefined ? cannot : 'apt-get could not install it'
  for (const need of absent) {
    const where = named(need) ? `${need.pathEnv}=${env[need.pathEnv ?? '']} is not an executable` : why
    log(`${PREFIX} ${need.program}: MISSING (${where}); ${need.usedBy} will fail or skip`)
  }
  const pkgs = [...new Set(absent.filter((need) => !named(need)).map((need) => need.pkg))]
  if (pkgs.length > 0) log(`${PREFIX} to install: sudo apt-get install ${pkgs.join(' ')}`)
  if (env.CI) {
    log(`${PREFIX} CI is set: a missing program fails the run`)
    return 1
  }
  return 0
}

/** The program's path: `pathEnv`'s value or the default path when named, else the first on PATH (and the sbin directories, where ip and iptables live). */
function locate(/** @type {typeof NEEDS[number]} */ need) {
  const executable = (/** @type {string} */ path) => {
    try {
      accessSync(path, constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  if (need.pathEnv !== undefined) {
    const path = process.env[need.pathEnv] ?? need.defaultPath
    return path !== undefined && executable(path) ? path : undefined
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  return dirs.filter(Boolean).map((dir) => join(dir, need.program)).find(executable)
}

function run(/** @type {string[]} */ argv) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return { status: r.status ?? 1, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` }
}

/** How to install: { sudo: [] } as root, { sudo: ['sudo', '-n'] } when sudo needs no password, else why it cannot. */
function installer() {
  if (run(['sh', '-c', 'command -v apt-get']).status !== 0) return { sudo: undefined, cannot: 'no apt-get: not Debian or Ubuntu' }
  if (process.getuid?.() === 0) return { sudo: [] }
  if (run(['sudo', '-n', 'true']).status === 0) return { sudo: ['sudo', '-n'] }
  return { sudo: undefined, cannot: 'not root, and sudo is missing or needs a password' }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = setUp({ env: process.env, ...installer(), locate, run, log: (line) => console.log(line) })
}
