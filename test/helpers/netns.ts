import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import type { TestScope } from './redis.js'

const run = promisify(execFile)

/**
 * A test network of Linux network namespaces: a bridge in the root namespace (the test
 * process's own address on it is `net.root`), and hosts, each a namespace with one veth
 * whose other end is a port of the bridge. Services started in a host (`spawnService`'s
 * `netns`) bind the host's address; faults are iptables rules in the hosts' namespaces, so
 * the machine's own tables are never touched.
 *
 * This kernel has no sch_netem (nor prio/fq_codel, nor tc drop actions): cuts and random
 * loss are iptables DROP rules (a dropped segment is retransmitted after the heal, as across
 * a real partition), and delay is a userspace proxy (`startTcpProxy`).
 */
export interface Host {
  readonly name: string
  /** The namespace; undefined for the root (the test process itself). */
  readonly ns: string | undefined
  readonly address: string
  /** The veth end in the root namespace, a port of the bridge (undefined for the root). */
  readonly port: string | undefined
}

/** Undoes one fault (its own rules only: other faults stay). */
export type Heal = () => Promise<void>

export interface Net {
  /** The test process's address on the bridge. */
  readonly root: Host
  /** A new namespace with loopback up and one address on the bridge. */
  addHost(name: string): Promise<Host>
  /** Packets from `from` to `to` are dropped (TCP retransmits them once healed). */
  cutOneWay(from: Host, to: Host): Promise<Heal>
  /** Both directions. */
  cut(a: Host, b: Host): Promise<Heal>
  /** Drops this fraction (0 to 1) of the packets `host` receives and of those it sends. */
  loss(host: Host, probability: number): Promise<void>
  /** The host's cable pulled: its veth down, no FIN, no RST, sends fail locally. */
  dropLink(host: Host): Promise<void>
  /** Removes every cut, loss and dropped link. */
  heal(): Promise<void>
  /** `ip netns exec <ns>` in front of a command (nothing for the root). */
  wrap(host: Host, command: readonly string[]): string[]
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`
  if (process.getuid?.() !== 0) return 'not root: ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN'
  for (const tool of ['ip', 'iptables']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no \`${tool}\` on the PATH (apt-get install iproute2 iptables)`
  }
  const probe = `sbprobe${process.pid}`
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' })
  if (added.status !== 0) return `ip netns add failed: ${added.stderr.trim()}`
  const filter = spawnSync('ip', ['netns', 'exec', probe, 'iptables', '-A', 'INPUT', '-s', '10.0.0.1', '-j', 'DROP'], { encoding: 'utf8' })
  spawnSync('ip', ['netns', 'del', probe])
  if (filter.status !== 0) return `iptables in a namespace failed: ${filter.stderr.trim()}`
  return undefined
}

/**
 * The reason to skip a namespace suite, or false to run it. Under CI (CI set) a suite that
 * cannot run throws instead: CI must not pass by skipping it.
 */
export function netnsSkip(): string | false {
  const reason = netnsUnavailable()
  if (reason === undefined) return false
  if (process.env.CI) throw new Error(`network namespaces are required in CI and unavailable: ${reason}`)
  console.error(`# skipping the network-namespace suite: ${reason}`) // eslint-disable-line no-console -- the reason must reach the runner's output
  return `network namespaces unavailable: ${reason}`
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args)
}

/** A free 10.231.x.0/24 (no route to it yet); concurrent test files each take their own. */
async function freeSubnet(): Promise<string> {
  const { stdout } = await run('ip', ['-4', 'route', 'show'])
  for (let attempt = 0; attempt < 50; attempt++) {
    const subnet = `10.231.${Math.floor(Math.random() * 254) + 1}`
    if (!stdout.includes(`${subnet}.0/24`)) return subnet
  }
  throw new Error('no free 10.231.x.0/24 subnet')
}

/** Creates the bridge; the test's teardown deletes every host, rule and the bridge, also after a failure. */
export async function createNet(t: TestScope): Promise<Net> {
  const id = randomBytes(3).toString('hex') // interface names are at most 15 characters
  const subnet = await freeSubnet()
  const bridge = `sbbr${id}`
  const hosts: Host[] = []
  const rules: { ns: string; rule: string[] }[] = []
  const downed = new Set<Host>()
  let lastHost = 1 // .1 is the root's

  await ip('link', 'add', bridge, 'type', 'bridge')
  t.teardown(async () => {
    for (const host of hosts) await ip('netns', 'del', host.ns!).catch(() => undefined) // its veth goes with it
    await ip('link', 'del', bridge).catch(() => undefined)
  })
  await ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge)
  await ip('link', 'set', bridge, 'up')
  const root: Host = { name: 'root', ns: undefined, address: `${subnet}.1`, port: undefined }

  const iptables = async (ns: string, rule: string[]) => {
    await run('ip', ['netns', 'exec', ns, 'iptables', '-w', '-I', ...rule])
    const entry = { ns, rule }
    rules.push(entry)
    return entry
  }
  const remove = async (entry: (typeof rules)[number]) => {
    const i = rules.indexOf(entry)
    if (i < 0) return // already removed by heal()
    rules.splice(i, 1)
    const [chain, ...spec] = entry.rule
    // -D removes the first identical rule: the same cut made twice is two rules, undone one each.
    await run('ip', ['netns', 'exec', entry.ns, 'iptables', '-w', '-D', chain!, ...spec])
  }
  const healOf = (entries: (typeof rules)[number][]): Heal => async () => {
    for (const entry of entries.reverse()) await remove(entry)
  }
  // Dropped where the packet arrives (INPUT): a drop in the sender's OUTPUT would fail its
  // send locally (EPERM), which no real partition does. Only traffic to the root (the test
  // process) is dropped on the way out, the root's own tables being the machine's.
  const cutOneWay = async (from: Host, to: Host): Promise<Heal> => {
    if (to.ns) return healOf([await iptables(to.ns, ['INPUT', '-s', from.address, '-j', 'DROP'])])
    if (from.ns) return healOf([await iptables(from.ns, ['OUTPUT', '-d', to.address, '-j', 'DROP'])])
    throw new Error('cannot cut the root from itself')
  }

  return {
    root,
    addHost: async (name) => {
      const n = ++lastHost // taken before any await: hosts may be added concurrently
      if (n > 254) throw new Error('at most 253 hosts')
      const ns = `sb${id}${name}`.slice(0, 40)
      const port = `sbv${id}${n}`
      const host: Host = { name, ns, address: `${subnet}.${n}`, port }
      await ip('netns', 'add', ns)
      hosts.push(host)
      await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      await ip('link', 'set', port, 'master', bridge, 'up')
      await ip('-n', ns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0')
      await ip('-n', ns, 'link', 'set', 'eth0', 'up')
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
      return host
    },
    cutOneWay,
    cut: async (a, b) => {
      const heals = [await cutOneWay(a, b), await cutOneWay(b, a)]
      return async () => {
        for (const heal of heals) await heal()
      }
    },
    loss: async (host, probability) => {
      if (!host.ns) throw new Error('loss needs a host with a namespace')
      const drop = ['-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP']
      await iptables(host.ns, ['INPUT', ...drop])
      await iptables(host.ns, ['OUTPUT', ...drop])
    },
    dropLink: async (host) => {
      if (!host.ns) throw new Error('dropLink needs a host with a namespace')
      // Inside the namespace: its routes go with the link, so its own connects fail at once
      // (ENETUNREACH) rather than wait for SYN timeouts, as on a phone that lost its network.
      await ip('-n', host.ns, 'link', 'set', 'eth0', 'down')
      downed.add(host)
    },
    heal: async () => {
      for (const entry of [...rules].reverse()) await remove(entry)
      for (const host of downed) await ip('-n', host.ns!, 'link', 'set', 'eth0', 'up')
      downed.clear()
    },
    wrap: (host, command) => (host.ns ? ['ip', 'netns', 'exec', host.ns, ...command] : [...command]),
  }
}
