// `npm test`'s set-up (scripts/setup-test-env.mjs) against a fake machine: which programs are
// there, what apt-get installs, what it prints, and when the run goes on.
import t from 'tap'

interface Need {
  program: string
  pkg: string
}
interface SetUpDeps {
  env: Record<string, string | undefined>
  sudo: string[] | undefined
  cannot?: string
  locate(need: Need): string | undefined
  run(argv: string[]): { status: number; output: string }
  log(line: string): void
}
// A plain script (npm test runs it before anything is compiled): typed here, by what the test uses.
const SCRIPT = '../../scripts/setup-test-env.mjs'
const { NEEDS, setUp } = (await import(SCRIPT)) as { NEEDS: readonly Need[]; setUp(deps: SetUpDeps): number }

/** A machine with these programs; apt-get installs any package but those in `unavailable`. */
function machine(installed: readonly string[], options: { sudo?: string[] | 'none'; unavailable?: string[]; env?: Record<string, string> } = {}) {
  const { unavailable = [], env = {} } = options
  const sudo = options.sudo === 'none' ? undefined : (options.sudo ?? [])
  const programs = new Set(installed)
  const ran: string[] = []
  const lines: string[] = []
  const code = setUp({
    env,
    sudo,
    cannot: 'not root',
    locate: (need) => (programs.has(need.program) ? `/usr/bin/${need.program}` : undefined),
    run: (argv) => {
      if (!argv.includes('apt-get')) return { status: 0, output: `${argv[0]} 1.0\n` }
      ran.push(argv.join(' '))
      const pkg = argv.at(-1)!
      if (argv.includes('install') && unavailable.includes(pkg)) return { status: 100, output: `E: Unable to locate package ${pkg}` }
      for (const need of NEEDS) if (argv.includes('install') && need.pkg === pkg) programs.add(need.program)
      return { status: 0, output: '' }
    },
    log: (line) => lines.push(line),
  })
  return { code, ran, lines, output: lines.join('\n') }
}

const ALL = NEEDS.map((need) => need.program)

t.test('everything there: installs nothing, prints each program with its version', async (t) => {
  const m = machine(ALL)
  t.equal(m.code, 0)
  t.same(m.ran, [])
  t.equal(m.lines.length, NEEDS.length)
  t.match(m.output, /redis-server: \/usr\/bin\/redis-server \(\/usr\/bin\/redis-server 1\.0\)/)
})

t.test('as root: updates once, installs each missing package, and says every command it ran', async (t) => {
  const m = machine(['ip'])
  t.equal(m.code, 0)
  const apt = 'env DEBIAN_FRONTEND=noninteractive apt-get'
  t.same(m.ran, [`${apt} update -qq`, `${apt} install -y -qq redis-server`, `${apt} install -y -qq chromium-headless-shell`, `${apt} install -y -qq iptables`])
  for (const command of m.ran) t.match(m.output, `running: ${command}`)
  t.notMatch(m.output, /MISSING/)
})

t.test('with password-less sudo: the same commands under sudo -n', async (t) => {
  const m = machine(ALL.filter((p) => p !== 'redis-server'), { sudo: ['sudo', '-n'] })
  t.same(m.ran, ['sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq', 'sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server'])
})

t.test('a package apt-get cannot install is named; the others are installed; the run goes on', async (t) => {
  const m = machine([], { unavailable: ['chromium-headless-shell'] })
  t.equal(m.code, 0)
  t.equal(m.ran.length, 1 + 4, 'update, then one install per package')
  t.match(m.output, /failed \(exit 100\): E: Unable to locate package chromium-headless-shell/)
  t.match(m.output, /chromium-headless-shell: MISSING \(apt-get could not install it\); the browser suites/)
  t.match(m.output, /to install: sudo apt-get install chromium-headless-shell$/m)
  t.match(m.output, /redis-server: \/usr\/bin\/redis-server/)
})

t.test('not root and no sudo: runs nothing, says what to install, and goes on; under CI it fails the run', async (t) => {
  const m = machine(['chromium-headless-shell', 'ip'], { sudo: 'none' })
  t.equal(m.code, 0)
  t.same(m.ran, [])
  t.match(m.output, /redis-server: MISSING \(not root\)/)
  t.match(m.output, /iptables: MISSING \(not root\); the network-partition suites/)
  t.match(m.output, /to install: sudo apt-get install redis-server iptables$/m)
  t.equal(machine(['chromium-headless-shell', 'ip'], { sudo: 'none', env: { CI: '1' } }).code, 1)
})

t.test("CHROMIUM_PATH names the user's browser: never installed over, named when it is not there", async (t) => {
  const m = machine(ALL.filter((p) => p !== 'chromium-headless-shell'), { env: { CHROMIUM_PATH: '/opt/chrome' } })
  t.same(m.ran, [])
  t.match(m.output, /chromium-headless-shell: MISSING \(CHROMIUM_PATH=\/opt\/chrome is not an executable\)/)
  t.notMatch(m.output, /to install/)
})
