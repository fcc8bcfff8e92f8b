import { parseArgs } from 'node:util'
import { SwitchboardApiError, SwitchboardBackend } from '@switchboard/backend'
import { OPERATION_NAMES, PUSH_WAITS, type PipelineOp, type PushWait } from '@switchboard/protocol'
import { readSession, sessionFile, type LocalSession } from './session.js'
import { mintDevToken } from './token.js'

type Env = Record<string, string | undefined>

const USAGE = `usage: switchboard <command> [options]

  token --user <id> [--ttl 24h]          mint a development client token (HS256)
  push --to <id>[,<id>...] --event <name> [--data <json>] [--id <id>] [--keep] [--wait routed | --ack <timeout ms>]
  push --room <room> --event <name> [--data <json>] [--id <id>] [--except <id>,...] [--keep]
  presence <id> [<id>...]                who is online, and where
  nodes                                  live edges and their connections
  revoke <id> [--reason <text>]          sign a user out everywhere: close their sockets (4503)
                                         and refuse every token of theirs issued until now
  room add|remove <room> <id> [<id>...]  change a room's members (remove one id: a kick)
  room members|presence|info <room>      its members (first 1,000), who of it is online, its size
  room clear|delete <room>               remove every member (delete also ends the room)

options:
  --url <router URL>    or SWITCHBOARD_URL
  --key <API key>       or SWITCHBOARD_API_KEY
  --secret <JWT secret> or EDGE_JWT_SECRET (token only)
  --json                print the router's answer as JSON

Without them, the values of the local Switchboard that \`npm start\` or \`npm run cluster\`
is running are used. Exit status: 0 done, 1 the request failed, 2 bad usage.`

/** A mistake in the command line: exit 2 with the usage. */
class UsageError extends Error {}
/** A request that failed: exit 1. */
class RequestError extends Error {}

/** Runs one command; resolves with the exit status. Output goes to `out`, errors to `err`. */
export async function main(argv: string[], env: Env, out = process.stdout, err = process.stderr): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        user: { type: 'string' },
        ttl: { type: 'string', default: '24h' },
        to: { type: 'string' },
        room: { type: 'string' },
        except: { type: 'string' },
        event: { type: 'string' },
        data: { type: 'string' },
        id: { type: 'string' },
        keep: { type: 'boolean', default: false },
        wait: { type: 'string' },
        ack: { type: 'string' },
        url: { type: 'string' },
        key: { type: 'string' },
        secret: { type: 'string' },
        json: { type: 'boolean', default: false },
        reason: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
    const [command, ...rest] = positionals
    if (values.help || command === 'help') {
      out.write(`${USAGE}\n`)
      return 0
    }
    const session = () => readSession(sessionFile(env))
    const call: Call = (fn) => request(routerOf(values, env, session), fn)
    const print: Print = (answer, text) => out.write(`${values.json ? JSON.stringify(answer) : text()}\n`)

    switch (command) {
      case 'token': {
        if (!values.user) throw new UsageError('token needs --user <id>')
        const secret = values.secret ?? env.EDGE_JWT_SECRET ?? session()?.jwtSecret
        if (!secret) throw new UsageError('no JWT secret: pass --secret or set EDGE_JWT_SECRET (or start a local Switchboard)')
        out.write(`${await mintDevToken(secret, values.user, values.ttl)}\n`)
        return 0
      }
      case 'push': {
        if (!values.event || (values.to === undefined) === (values.room === undefined)) {
          throw new UsageError('push needs --event <name> and either --to <id>[,<id>...] or --room <room>')
        }
        const common = {
          event: values.event,
          data: parseData(values.data),
          ...(values.id ? { id: values.id } : {}),
          ...(values.keep ? { keep: true } : {}),
        }
        if (values.wait !== undefined && !PUSH_WAITS.includes(values.wait as PushWait)) throw new UsageError(`--wait: ${PUSH_WAITS.join(' or ')}, not ${values.wait}`)
        if (values.room !== undefined && values.wait === 'routed') throw new UsageError('--wait routed: only for --to (a room push waits for its edges)')
        if (values.ack !== undefined && (values.room !== undefined || !/^\d+$/.test(values.ack))) throw new UsageError('--ack <timeout ms>: a whole number, only with --to')
        if (values.room !== undefined) {
          const room = values.room
          const answer = await call((router) => router.push({ room, ...common, ...(values.except ? { except: ids(values.except) } : {}) }))
          print(answer, () =>
            [
              `push ${answer.id} to room ${answer.room}: ${answer.members} members, ${answer.reached} reached on ${answer.edges} edge${answer.edges === 1 ? '' : 's'}${answer.failedEdges > 0 ? ` (${answer.failedEdges} failed)` : ''}`,
              ...(answer.delivered ? [`  delivered  ${list(answer.delivered)}`, `  offline    ${list(answer.offline ?? [])}`, `  failed     ${list(answer.failed ?? [])}`] : []),
              ...(answer.kept ? [`  kept       ${list(answer.kept)}`] : []),
            ].join('\n'),
          )
          return 0
        }
        const body = { to: ids(values.to!), ...common, ...(values.wait ? { wait: values.wait as PushWait } : {}), ...(values.ack ? { ack: { timeoutMs: Number(values.ack) } } : {}) }
        const answer = await call((router) => router.push(body))
        print(answer, () =>
          [
            `push ${answer.id}`,
            ...('routed' in answer ? [`  routed     ${list(answer.routed)}`] : 'acked' in answer ? [`  acked      ${list(answer.acked)}`, `  unacked    ${list(answer.unacked)}`] : [`  delivered  ${list(answer.delivered)}`]),
            `  offline    ${list(answer.offline)}`,
            `  failed     ${list(answer.failed)}`,
            ...(answer.kept ? [`  kept       ${list(answer.kept)}`] : []),
          ].join('\n'),
        )
        return 0
      }
      case 'revoke': {
        if (rest.length !== 1) throw new UsageError('revoke needs exactly one user id')
        const reason = values.reason
        const answer = await call((router) => router.revoke(rest[0]!, reason === undefined ? undefined : { reason }))
        print(answer, () => `${answer.userId}  revoked: tokens issued until ${new Date(answer.revokedBefore).toISOString()} refused, ${answer.closed} socket${answer.closed === 1 ? '' : 's'} closed`)
        return 0
      }
      case 'presence': {
        if (rest.length === 0) throw new UsageError('presence needs at least one user id')
        if (rest.length === 1) {
          const answer = await call((router) => router.presence(rest[0]!))
          print(answer, () => {
            if (!answer.online) return `${answer.userId}  offline`
            const conns = answer.connections.map((c) => `    ${c.connId} on ${c.nodeId} since ${new Date(c.since).toISOString()}`)
            return [`${answer.userId}  online (${answer.connections.length} connection${answer.connections.length === 1 ? '' : 's'})`, ...conns].join('\n')
          })
        } else {
          const answer = await call((router) => router.presenceQuery(rest))
          print(answer, () => [...answer.online.map((u) => `${u}  online`), ...answer.offline.map((u) => `${u}  offline`)].join('\n'))
        }
        return 0
      }
      case 'nodes': {
        const answer = await call((router) => router.nodes())
        print(answer, () => {
          if (answer.nodes.length === 0) return 'no live edges'
          const rows = answer.nodes.map((n) => [n.nodeId, String(n.connections), n.draining ? 'draining' : 'serving', new Date(n.startedAt).toISOString()])
          return table([['node', 'connections', 'state', 'started'], ...rows])
        })
        return 0
      }
      case 'room':
        return await roomCommand(rest, call, print)
      case undefined:
        throw new UsageError('no command given')
      default:
        throw new UsageError(`unknown command "${command}"`)
    }
  } catch (e) {
    if (e instanceof RequestError) {
      err.write(`switchboard: ${e.message}\n`)
      return 1
    }
    // parseArgs reports unknown options and missing values with plain errors (code ERR_PARSE_ARGS_*).
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    if (!usage) throw e
    err.write(`switchboard: ${(e as Error).message}\n\n${USAGE}\n`)
    return 2
  }
}

type Call = <T>(fn: (router: SwitchboardBackend) => Promise<T>) => Promise<T>
type Print = (answer: unknown, text: () => string) => void

/** The verbs of `room`: the API's room operations (`room.add` is `room add`). */
const ROOM_VERBS = OPERATION_NAMES.filter((op) => op.startsWith('room.')).map((op) => op.slice('room.'.length))

/** `room <verb> <room> [<id>...]`. */
async function roomCommand([verb, room, ...users]: string[], call: Call, print: Print): Promise<number> {
  if (!room) throw new UsageError(`room needs a verb (${ROOM_VERBS.join(', ')}) and a room`)
  if (!ROOM_VERBS.includes(verb!)) throw new UsageError(`unknown room verb "${verb}"`)
  switch (verb) {
    case 'add':
    case 'remove': {
      if (users.length === 0) throw new UsageError(`room ${verb} needs at least one user id`)
      if (verb === 'add') {
        const a = await call((router) => router.roomAdd(room, users))
        print(a, () => `${a.room}: ${a.members} members; added ${list(a.added)}${a.refused.length > 0 ? `; refused (in too many rooms) ${list(a.refused)}` : ''}`)
      } else {
        const a = await call((router) => router.roomRemove(room, users))
        print(a, () => `${a.room}: ${a.members} members; removed ${list(a.removed)}`)
      }
      return 0
    }
    case 'members': {
      const a = await call((router) => router.roomMembers(room, { limit: 1_000 }))
      print(a, () => [...a.userIds, ...(a.cursor ? [`… more after ${a.cursor} (GET /v1/rooms/:room/members?cursor=…)`] : [])].join('\n') || `${room}: no members`)
      return 0
    }
    case 'presence': {
      const a = await call((router) => router.roomPresence(room))
      print(a, () => [`${a.room}: ${a.online} online of ${a.members} members`, ...(a.users ? [`  online     ${list(a.users)}`] : []), ...(a.offline ? [`  offline    ${list(a.offline)}`] : [])].join('\n'))
      return 0
    }
    case 'info': {
      const a = await call((router) => router.roomInfo(room))
      print(a, () => (a.exists ? `${a.room}: ${a.members} members` : `${a.room}: no such room`))
      return 0
    }
    case 'clear':
    case 'delete': {
      const a = await call((router) => (verb === 'clear' ? router.roomClear(room) : router.roomDelete(room)))
      print(a, () => `${a.room}: ${verb === 'clear' ? 'cleared' : 'deleted'}, ${a.removed} members removed`)
      return 0
    }
    default: {
      // A room operation of the table with no command of its own: called by its name, its answer printed as JSON.
      const a = await call((router) => router.call(`room.${verb}` as PipelineOp, users.length > 0 ? { room, userIds: users } : { room }))
      print(a, () => JSON.stringify(a))
      return 0
    }
  }
}

const ids = (csv: string) => csv.split(',').map((s) => s.trim()).filter(Boolean)

interface Router {
  url: string
  key: string
}

/** Flags first, then the environment, then the running local Switchboard. */
function routerOf(flags: { url?: string; key?: string }, env: Env, session: () => LocalSession | undefined): Router {
  const local = flags.url && flags.key ? undefined : session()
  const url = flags.url ?? env.SWITCHBOARD_URL ?? local?.routerUrl
  const key = flags.key ?? env.SWITCHBOARD_API_KEY ?? local?.apiKey
  if (!url || !key) throw new UsageError('no router: pass --url and --key, set SWITCHBOARD_URL and SWITCHBOARD_API_KEY, or start a local Switchboard')
  return { url, key }
}

/**
 * One call to the router over HTTP (a one-shot command has no use for the pipeline); a
 * failure becomes a RequestError: the router's status, code and message, or why it could not
 * be reached.
 */
async function request<T>(router: Router, fn: (client: SwitchboardBackend) => Promise<T>): Promise<T> {
  let client: SwitchboardBackend
  try {
    client = new SwitchboardBackend({ url: router.url, apiKey: router.key, transport: 'http', timeoutMs: 10_000 })
  } catch (e) {
    throw requestError(e, router)
  }
  try {
    return await fn(client)
  } catch (e) {
    throw requestError(e, router)
  } finally {
    await client.close()
  }
}

function requestError(e: unknown, router: Router): unknown {
  if (!(e instanceof SwitchboardApiError)) return e // a bug, not a failed request: main lets it surface
  if (e.code === 'bad_answer') return new RequestError(e.message)
  if (e.status !== undefined) return new RequestError(`the router answered ${e.status} ${e.code}: ${e.message}`)
  return new RequestError(`cannot reach the router at ${router.url}: ${(e.cause as Error | undefined)?.message ?? e.message}`)
}

function parseData(data: string | undefined): unknown {
  if (data === undefined) return null
  try {
    return JSON.parse(data)
  } catch {
    throw new UsageError(`--data must be JSON (e.g. '{"text":"hi"}'), not ${data}`)
  }
}

const list = (ids: readonly string[]) => (ids.length > 0 ? ids.join(', ') : '-')

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}
