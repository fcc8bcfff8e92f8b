// What can be checked of k8s/ without a cluster: each overlay is assembled the way kustomize
// would (resources, configMapGenerator merges, replicas, images: the only features the
// manifests use), then its objects are checked against each other and against the services'
// own config schemas.
import { readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { loadConfig } from '@switchboard/config'
import { EDGE_ENV_NAMES, EdgeEnv } from '@switchboard/edge'
import { ROUTER_ENV_NAMES, RouterEnv } from '@switchboard/router'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kubernetes objects are checked field by field
type Obj = any
interface Built {
  objects: Obj[]
  configMaps: Map<string, Record<string, string>>
}

const K8S = fileURLToPath(new URL('../../k8s/', import.meta.url))
const OVERLAYS = ['dev', 'production']

function readYaml(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Obj).filter((o) => o !== null)
}

/** A kustomization, assembled: resources (files or directories), then the generators and transformers. */
function build(dir: string): Built {
  const [k] = readYaml(join(dir, 'kustomization.yaml'))
  const built: Built = { objects: [], configMaps: new Map() }
  for (const resource of k.resources ?? []) {
    const path = join(dir, resource)
    if (statSync(path).isDirectory()) {
      const sub = build(path)
      built.objects.push(...sub.objects)
      for (const [name, data] of sub.configMaps) built.configMaps.set(name, data)
    } else built.objects.push(...readYaml(path))
  }
  for (const gen of k.configMapGenerator ?? []) {
    const literals = Object.fromEntries((gen.literals as string[]).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
    if (gen.behavior === 'merge') {
      const base = built.configMaps.get(gen.name)
      if (!base) throw new Error(`${dir}: merges into unknown ConfigMap ${gen.name}`)
      Object.assign(base, literals)
    } else built.configMaps.set(gen.name, literals)
  }
  for (const r of k.replicas ?? []) {
    const target = built.objects.find((o) => o.metadata.name === r.name && o.kind === 'Deployment')
    if (!target) throw new Error(`${dir}: replicas for unknown Deployment ${r.name}`)
    target.spec.replicas = r.count
  }
  return built
}

const find = (b: Built, kind: string, name: string): Obj => {
  const o = b.objects.find((x) => x.kind === kind && x.metadata.name === name)
  if (!o) throw new Error(`no ${kind} ${name}`)
  return o
}
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v)

/** A container's environment as the kubelet would give it (field refs faked, $(VAR) expanded). */
function environment(b: Built, container: Obj): { env: Record<string, string>; helpers: string[] } {
  const env: Record<string, string> = {}
  for (const from of container.envFrom ?? []) {
    const data = b.configMaps.get(from.configMapRef.name)
    if (!data) throw new Error(`envFrom names unknown ConfigMap ${from.configMapRef.name}`)
    Object.assign(env, data)
  }
  const fields: Record<string, string> = { 'metadata.name': 'switchboard-edge-7d9f8-x2kqp', 'status.podIP': '10.1.2.3' }
  const referenced = new Set<string>()
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = String(e.value).replace(/\$\((\w+)\)/g, (_: string, name: string) => {
        referenced.add(name)
        if (env[name] === undefined) throw new Error(`${e.name} refers to $(${name}) before it is defined`)
        return env[name]!
      })
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef
      const value = find(b, 'Secret', ref.name).stringData?.[ref.key]
      if (value === undefined) throw new Error(`${e.name}: Secret ${ref.name} has no key ${ref.key}`)
      env[e.name] = value
    } else if (e.valueFrom?.fieldRef) {
      env[e.name] = fields[e.valueFrom.fieldRef.fieldPath] ?? 'x'
    }
  }
  return { env, helpers: [...referenced] }
}

const services = {
  edge: { main: 'apps/edge/dist/main.js', schema: EdgeEnv, names: EDGE_ENV_NAMES },
  router: { main: 'apps/router/dist/main.js', schema: RouterEnv, names: ROUTER_ENV_NAMES },
} as const

for (const overlay of OVERLAYS) {
  const b = build(join(K8S, 'overlays', overlay))
  const deployments = b.objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')

  t.test(`${overlay}: every selector matches the labels it is meant for`, async (t) => {
    for (const d of deployments) t.ok(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), `${d.kind} ${d.metadata.name}: selector matches its pods`)
    for (const s of b.objects.filter((o) => o.kind === 'Service')) {
      t.ok(deployments.some((d) => matches(s.spec.selector, d.spec.template.metadata.labels)), `Service ${s.metadata.name} selects pods`)
    }
    const edge = find(b, 'Deployment', 'switchboard-edge')
    const router = find(b, 'Deployment', 'switchboard-router')
    t.ok(matches(find(b, 'PodDisruptionBudget', 'switchboard-edge').spec.selector.matchLabels, edge.spec.template.metadata.labels), 'PDB selects edges')
    const hpa = find(b, 'HorizontalPodAutoscaler', 'switchboard-router')
    t.equal(hpa.spec.scaleTargetRef.name, router.metadata.name, 'HPA scales the router')
    const affinity = edge.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm
    t.ok(matches(affinity.labelSelector.matchLabels, edge.spec.template.metadata.labels), 'anti-affinity spreads edges from each other')
  })

  t.test(`${overlay}: every variable is one the service reads, and the service accepts the whole environment`, async (t) => {
    for (const name of ['switchboard-edge', 'switchboard-router']) {
      const [container] = find(b, 'Deployment', name).spec.template.spec.containers
      const service = Object.values(services).find((s) => container.args?.includes(s.main))
      if (!t.ok(service, `${name} runs a known service`)) continue
      const { env, helpers } = environment(b, container)
      for (const variable of Object.keys(env)) {
        t.ok(service!.names.includes(variable) || helpers.includes(variable), `${name}: ${variable} is read by the service (or only feeds another variable)`)
      }
      const config = loadConfig(service!.schema, env) // throws, naming every bad variable
      t.ok(config.redis, `${name}: a Redis target is set`)
    }
  })

  t.test(`${overlay}: ports and probes hit ports and routes that exist`, async (t) => {
    for (const [name, listens] of [
      ['switchboard-edge', { ws: 8080, internal: 8081 }],
      ['switchboard-router', { http: 3000, admin: 3100 }],
    ] as const) {
      const [container] = find(b, 'Deployment', name).spec.template.spec.containers
      const ports = Object.fromEntries((container.ports as Obj[]).map((p) => [p.name, p.containerPort]))
      t.same(ports, listens, `${name}: container ports are the service's defaults`)
      const probePort = name === 'switchboard-edge' ? 8081 : 3000
      for (const [probe, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']] as const) {
        const get = container[probe].httpGet
        t.equal(get.path, path, `${name}: ${probe} path`)
        t.equal(typeof get.port === 'string' ? ports[get.port] : get.port, probePort, `${name}: ${probe} on port ${probePort}`)
      }
    }
    const edgeService = find(b, 'Service', 'switchboard-edge')
    t.equal(edgeService.spec.ports[0].targetPort, 'ws', 'the public Service reaches the websocket port')
    t.not(edgeService.spec.sessionAffinity, 'ClientIP', 'no session affinity')
  })

  t.test(`${overlay}: the edge's grace period outlasts preStop plus the drain`, async (t) => {
    const spec = find(b, 'Deployment', 'switchboard-edge').spec.template.spec
    const { env } = environment(b, spec.containers[0])
    const drainMs = loadConfig(EdgeEnv, env).drainMs
    const [cmd, seconds] = spec.containers[0].lifecycle.preStop.exec.command
    t.equal(cmd, 'sleep')
    const needMs = Number(seconds) * 1_000 + drainMs + 5_000 // + leaving the registry
    t.ok(spec.terminationGracePeriodSeconds * 1_000 > needMs, `grace ${spec.terminationGracePeriodSeconds} s > preStop ${seconds} s + drain ${drainMs} ms + 5 s`)
  })

  t.test(`${overlay}: only routers, edges (evictions) and monitoring reach the edges' internal port`, async (t) => {
    const policy = find(b, 'NetworkPolicy', 'switchboard-edge')
    const edgeLabels = find(b, 'Deployment', 'switchboard-edge').spec.template.metadata.labels
    const routerLabels = find(b, 'Deployment', 'switchboard-router').spec.template.metadata.labels
    t.ok(matches(policy.spec.podSelector.matchLabels, edgeLabels), 'applies to edges')
    t.same(policy.spec.policyTypes, ['Ingress'])
    const rules = policy.spec.ingress as Obj[]
    const opensPort = (rule: Obj, port: number) => !rule.ports || rule.ports.some((p: Obj) => p.port === port)
    for (const rule of rules.filter((r) => !r.from)) t.notOk(opensPort(rule, 8081), 'no rule opens 8081 to everyone')
    const internal = rules.filter((r) => r.from && opensPort(r, 8081))
    t.ok(internal.length > 0, 'a rule opens 8081')
    for (const rule of internal) {
      for (const peer of rule.from) {
        const toPods = (labels: Obj) => peer.podSelector && matches(peer.podSelector.matchLabels, labels) && !peer.namespaceSelector
        const toMonitoring = peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring' && !peer.podSelector
        t.ok(toPods(routerLabels) || toPods(edgeLabels) || toMonitoring, `8081 peer ${JSON.stringify(peer)} is routers, edges or monitoring`)
      }
    }
    const peers = internal.flatMap((r) => r.from as Obj[])
    t.ok(peers.some((p) => p.podSelector && matches(p.podSelector.matchLabels, edgeLabels)), 'edges reach each other (an eviction\'s disconnect)')
    t.ok(rules.some((r) => !r.from && opensPort(r, 8080)), 'the websocket port is open')
  })

  t.test(`${overlay}: the routers' admin web is on, on its own port, and no pod reaches that port`, async (t) => {
    const [container] = find(b, 'Deployment', 'switchboard-router').spec.template.spec.containers
    const { admin } = loadConfig(RouterEnv, environment(b, container).env)
    const adminPort = (container.ports as Obj[]).find((p) => p.name === 'admin')?.containerPort
    t.equal(admin?.port, adminPort, 'ROUTER_ADMIN_PORT is the container\'s admin port')
    t.ok(container.env.find((e: Obj) => e.name === 'ROUTER_ADMIN_PASSWORD')?.valueFrom?.secretKeyRef, 'its password comes from a Secret')
    const policy = find(b, 'NetworkPolicy', 'switchboard-router')
    t.ok(matches(policy.spec.podSelector.matchLabels, find(b, 'Deployment', 'switchboard-router').spec.template.metadata.labels), 'a policy applies to routers')
    const rules = policy.spec.ingress as Obj[]
    t.ok(rules.every((r) => r.ports && !r.ports.some((p: Obj) => p.port === adminPort || p.port === 'admin')), 'no rule opens the admin port')
    t.ok(rules.some((r) => r.ports.some((p: Obj) => p.port === 3000)), 'the API port is open')
    t.notOk(b.objects.some((o) => o.kind === 'Service' && o.spec.ports.some((p: Obj) => p.targetPort === 'admin' || p.targetPort === adminPort)), 'no Service exposes it')
  })

  t.test(`${overlay}: secrets hold placeholders, never real-looking values`, async (t) => {
    for (const secret of b.objects.filter((o) => o.kind === 'Secret')) {
      t.notOk(secret.data, `${secret.metadata.name}: no base64 data, placeholders in stringData only`)
      for (const [key, value] of Object.entries(secret.stringData as Record<string, string>)) {
        for (const part of value.split(',')) t.match(part, /^REPLACE-ME/, `${key}: a placeholder`)
        t.notMatch(value, /[0-9a-f]{24,}|[A-Za-z0-9+/]{40,}={0,2}|eyJ[\w-]+\./, `${key}: nothing that looks like a key or token`)
      }
    }
  })
}

t.test('the overlays differ where they should: Redis and scale', async (t) => {
  const dev = build(join(K8S, 'overlays', 'dev'))
  const prod = build(join(K8S, 'overlays', 'production'))
  t.ok(dev.objects.some((o) => o.kind === 'StatefulSet' && o.metadata.name === 'switchboard-redis'), 'dev runs its own Redis')
  t.equal(dev.configMaps.get('switchboard-config')?.REDIS_URL, 'redis://switchboard-redis:6379')
  t.notOk(prod.objects.some((o) => o.kind === 'StatefulSet'), 'production brings its own Redis')
  t.ok(prod.configMaps.get('switchboard-config')?.REDIS_CLUSTER_NODES, 'production points at a Redis Cluster')
  t.ok(find(prod, 'Deployment', 'switchboard-edge').spec.replicas > find(dev, 'Deployment', 'switchboard-edge').spec.replicas)
})

t.test('the Dockerfile builds one non-root Node 22 slim image with production dependencies only', async (t) => {
  const dockerfile = readFileSync(join(dirname(K8S.replace(/\/$/, '')), 'Dockerfile'), 'utf8')
  const stages = dockerfile.match(/^FROM .+$/gm) ?? []
  t.ok(stages.length >= 2, 'multi-stage')
  for (const stage of stages) t.match(stage, /^FROM node:22-slim\b/)
  t.match(dockerfile, /^RUN npm ci --omit=dev/m)
  t.match(dockerfile, /^USER node$/m)
  for (const service of Object.values(services)) t.ok(dockerfile.includes(service.main.replace('/main.js', '')), `the image holds ${service.main}`)
})
