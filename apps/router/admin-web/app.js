// The admin page: no framework, no inline script (the CSP forbids it). Talks to /api with the
// session cookie, and sends the CSRF token on every state-changing call. One page per
// section, chosen by the URL's hash; the one shown refreshes every REFRESH_MS.
const REFRESH_MS = 2_000
/** How long an edge that left stays listed as gone. */
const GONE_SHOWN_MS = 60_000
const PAGES = ['cluster', 'user', 'push', 'events', 'rooms']

const $ = (id) => document.getElementById(id)
let csrfToken = ''
let loggedIn = false
let timer
/** nodeId → when it was last seen live, and when it went. */
const seen = new Map()
const gone = new Map()
/** The user and room on show (while their view is), refreshed with their page. */
let inspected
let lookedUpRoom

class Unauthorized extends Error {}

/**
 * A call to the admin API: the JSON answer, or an Error with the API's message; a 401 logs
 * out. A CSRF refusal (the session holding the token's secret expired, or the router
 * restarted) takes a fresh token and tries once more, so a login form left open still works.
 */
async function api(path, { method = 'GET', body } = {}, isRetry = false) {
  const headers = method === 'GET' ? {} : { 'content-type': 'application/json', 'x-csrf-token': csrfToken }
  let res
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' })
  } catch {
    banner('The router does not answer.')
    throw new Error('the router does not answer')
  }
  const json = await res.json().catch(() => ({}))
  if (res.status === 403 && json.error?.code === 'csrf_invalid' && !isRetry) {
    csrfToken = (await api('/api/session')).csrfToken
    return api(path, { method, body }, true)
  }
  if (res.status === 401 && path !== '/api/login') {
    show(false)
    throw new Unauthorized('log in again')
  }
  if (res.status === 503 && json.error?.code === 'registry_unavailable') banner('Redis is unavailable: the registry cannot be read. Sockets stay open; pushes answer 503.')
  else if (path !== '/api/login') banner('')
  if (!res.ok) {
    const err = new Error(json.error?.message ?? `the router answered ${res.status}`)
    err.status = res.status
    throw err
  }
  return json
}

function banner(text) {
  $('banner').textContent = text
  $('banner').hidden = !text
}

function el(tag, text, className) {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = text
  if (className) node.className = className
  return node
}

function row(...cells) {
  const tr = document.createElement('tr')
  tr.append(...cells.map((c) => (c instanceof Node ? c : el('td', String(c)))))
  return tr
}

const time = (ms) => new Date(ms).toLocaleTimeString()
const dateTime = (ms) => new Date(ms).toLocaleString()
const ago = (ms) => (ms < 1_000 ? 'just now' : ms < 60_000 ? `${(ms / 1_000).toFixed(0)} s ago` : `${(ms / 60_000).toFixed(0)} min ago`)
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

/** Shows the login form or the pages, and (re)starts the refresh of the page on show. */
function show(authenticated) {
  loggedIn = authenticated
  $('login').hidden = authenticated
  $('tabs').hidden = !authenticated
  $('logout').hidden = !authenticated
  if (!authenticated) {
    for (const p of PAGES) $(p).hidden = true
    clearInterval(timer)
    $('password').focus()
    return
  }
  route()
}

function currentPage() {
  const page = location.hash.slice(1)
  return PAGES.includes(page) ? page : 'cluster'
}

function route() {
  if (!loggedIn) return
  const page = currentPage()
  for (const p of PAGES) $(p).hidden = p !== page
  for (const a of $('tabs').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#${page}`) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  clearInterval(timer)
  void refresh()
  timer = setInterval(refresh, REFRESH_MS)
}

async function refresh() {
  const page = currentPage()
  try {
    if (page === 'cluster') await refreshCluster()
    else if (page === 'user' && !$('user-view').hidden) await inspect(inspected)
    else if (page === 'events') await refreshEvents()
    else if (page === 'rooms' && !$('room-view').hidden) await lookUpRoom(lookedUpRoom)
  } catch (err) {
    if (!(err instanceof Unauthorized)) console.warn('refresh failed:', err.message)
  }
}

// Cluster

async function refreshCluster() {
  const [cluster, traffic] = await Promise.all([api('/api/cluster'), api('/api/traffic')])
  if (cluster.registry !== 'ok') banner('Redis is unavailable: the registry cannot be read. Sockets stay open; pushes answer 503.')
  const now = Date.now()
  const live = new Set(cluster.nodes.map((n) => n.nodeId))
  if (cluster.registry === 'ok') {
    for (const [nodeId] of seen) if (!live.has(nodeId)) gone.set(nodeId, now)
    seen.clear()
    for (const nodeId of live) (seen.set(nodeId, now), gone.delete(nodeId))
  }
  for (const [nodeId, at] of gone) if (now - at > GONE_SHOWN_MS) gone.delete(nodeId)
  $('nodes').replaceChildren(
    ...cluster.nodes.map((n) =>
      row(n.nodeId, el('td', String(n.connections), 'num'), n.draining ? 'draining' : 'serving', dateTime(n.startedAt), el('td', `renewed ${(n.leaseAgeMs / 1000).toFixed(1)} s ago`, n.leaseAgeMs > (n.leaseTtlMs * 2) / 3 ? 'late' : 'num')),
    ),
  )
  const total = cluster.nodes.reduce((s, n) => s + n.connections, 0)
  $('cluster-summary').textContent = cluster.registry !== 'ok' ? 'The registry cannot be read: edges unknown.' : cluster.nodes.length === 0 ? 'No live edge.' : `${plural(cluster.nodes.length, 'live edge')}, ${plural(total, 'connection')}.`
  $('gone').textContent = gone.size === 0 ? '' : `Gone (lease lapsed or drained): ${[...gone].map(([id, at]) => `${id} at ${time(at)}`).join(', ')}`
  const p = cluster.router.presence
  $('routers').replaceChildren(
    ...cluster.routers.map((r) => row(r.workerId === cluster.router.workerId ? `${r.workerId} (this page's)` : r.workerId, el('td', `${r.partitions} of ${p.partitions}`, 'num'), `valid ${(r.expiresInMs / 1000).toFixed(1)} s more`)),
  )
  $('router-health').textContent = `This page's router: up since ${dateTime(cluster.router.startedAt)}; delivers presence partitions ${p.owned} of ${p.partitions}. A router is listed while it renews its presence claim (every second); a stopped one leaves within 5 s.`
  chart('chart-connections', traffic.samples, [{ key: 'connections', label: 'connections', className: 'line-a' }])
  chart('chart-pushes', traffic.samples, [
    { key: 'delivered', label: 'delivered/s', className: 'line-ok' },
    { key: 'routed', label: 'routed/s', className: 'line-routed' },
    { key: 'acked', label: 'acked/s', className: 'line-acked' },
    { key: 'unacked', label: 'unacked/s', className: 'line-unacked' },
    { key: 'offline', label: 'offline/s', className: 'line-b' },
    { key: 'failed', label: 'failed/s', className: 'line-bad' },
  ])
}

/** A line chart of the samples, scaled to its largest value; the legend gives the latest values. */
function chart(id, samples, series) {
  const svg = $(id)
  const ns = 'http://www.w3.org/2000/svg'
  const values = series.flatMap((s) => samples.map((x) => x[s.key] ?? 0))
  const max = Math.max(1, ...values)
  const lines = series.map((s) => {
    const line = document.createElementNS(ns, 'polyline')
    const n = Math.max(1, samples.length - 1)
    line.setAttribute('points', samples.map((x, i) => `${((i / n) * 300).toFixed(1)},${(98 - ((x[s.key] ?? 0) / max) * 94).toFixed(1)}`).join(' '))
    line.setAttribute('class', s.className)
    line.setAttribute('vector-effect', 'non-scaling-stroke')
    return line
  })
  svg.replaceChildren(...lines)
  const last = samples.at(-1)
  $(`${id}-axis`).replaceChildren(...(last ? [el('span', time(samples[0].at)), el('span', time(last.at))] : []))
  const legend = $(`${id}-legend`)
  legend.replaceChildren(
    ...(last ? series.map((s) => el('span', `${s.label} ${last[s.key] === null ? '?' : Number(last[s.key].toFixed(1))}`, s.className)) : [el('span', 'collecting… (a point every 2 s)')]),
    ...(last ? [el('span', `scale 0–${Number(max.toFixed(1))}`, 'muted')] : []),
  )
}

// User

async function inspect(userId) {
  const user = await api(`/api/users/${encodeURIComponent(userId)}`)
  inspected = user.userId
  $('user-view').hidden = false
  $('user-status').replaceChildren(el('strong', user.userId), ` is ${user.online ? `online: ${plural(user.connections.length, 'connection')}` : 'offline'}.`)
  $('user-status').className = user.online ? 'online' : 'offline'
  $('user-connections').replaceChildren(...(user.connections.length === 0 ? [row(el('td', 'No connection.', 'muted'), '', '')] : user.connections.map((c) => row(c.connId, c.nodeId, dateTime(c.since)))))
  $('disconnect').disabled = !user.online
  $('user-events-empty').textContent = user.events.length === 0 ? `No event for this user among the cluster's last ${user.eventsScanned}.` : ''
  $('user-events').replaceChildren(...user.events.map((e) => el('li', `${time(e.ts)} ${e.type} (${e.cause}), ${plural(e.connections, 'connection')}`)))
}

/**
 * A lookup form (`<name>-form`): `load` shows what its field names in `<name>-view`; a
 * failure says why in `<name>-error` and hides the view, which stops its refresh.
 */
function onLookup(name, inputId, load, before = () => {}) {
  $(`${name}-form`).addEventListener('submit', async (event) => {
    event.preventDefault()
    before()
    try {
      await load($(inputId).value.trim())
      $(`${name}-error`).textContent = ''
    } catch (err) {
      if (err instanceof Unauthorized) return
      $(`${name}-error`).textContent = err.message
      $(`${name}-view`).hidden = true
    }
  })
}

onLookup('user', 'user-id', inspect, () => {
  $('disconnect-confirm').hidden = true
  $('disconnect-result').textContent = ''
})

$('disconnect-form').addEventListener('submit', (event) => {
  event.preventDefault()
  $('disconnect-question').textContent = `Close every connection of ${inspected}? The client is told the reason and may reconnect.`
  $('disconnect-confirm').hidden = false
  $('disconnect-no').focus()
})

$('disconnect-no').addEventListener('click', () => {
  $('disconnect-confirm').hidden = true
  $('disconnect').focus()
})

$('disconnect-yes').addEventListener('click', async () => {
  $('disconnect-confirm').hidden = true
  try {
    const reason = $('disconnect-reason').value.trim()
    const answer = await api(`/api/users/${encodeURIComponent(inspected)}/disconnect`, { method: 'POST', body: reason ? { reason } : {} })
    $('disconnect-result').textContent = `Closed ${plural(answer.closed, 'connection')} (request ${answer.requestId}).`
    await inspect(inspected)
  } catch (err) {
    if (!(err instanceof Unauthorized)) $('disconnect-result').textContent = `Not disconnected: ${err.message}`
  }
})

// Test push

$('push-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const to = $('push-to').value.split(/[\s,]+/).filter(Boolean)
  let data
  try {
    data = $('push-data').value.trim() === '' ? undefined : JSON.parse($('push-data').value)
  } catch (err) {
    $('push-error').textContent = `Data is not JSON: ${err.message}`
    return
  }
  try {
    const answer = await api('/api/push', { method: 'POST', body: { to, event: $('push-event').value, data } })
    $('push-error').textContent = ''
    $('push-view').hidden = false
    $('push-request').textContent = `Push ${answer.id}, request ${answer.requestId} (search the router's and the edges' logs for it).`
    const result = (userId) => (answer.delivered.includes(userId) ? 'delivered' : answer.failed.includes(userId) ? 'failed' : 'offline')
    $('push-results').replaceChildren(...[...new Set(to)].map((userId) => row(userId, el('td', result(userId), `result-${result(userId)}`))))
  } catch (err) {
    if (err instanceof Unauthorized) return
    $('push-error').textContent = err.message
    $('push-view').hidden = true
  }
})

// Presence events

async function refreshEvents() {
  const { events, delivery } = await api('/api/events')
  const now = Date.now()
  $('delivery-summary').textContent = `This router delivers presence partitions ${delivery.owned} of ${delivery.partitions}; the backlog below is its share (each router shows its own).`
  $('sinks').replaceChildren(
    ...delivery.sinks.map((s) =>
      row(
        s.label,
        el('td', s.disabled ? 'disabled (answered 410 Gone)' : s.pending > 0 && s.lastError && s.lastError.at > (s.lastAckAt ?? 0) ? 'retrying' : 'delivering', s.disabled ? 'late' : ''),
        s.pending === 0 ? 'caught up' : `${s.pending} events, oldest ${ago(s.oldestPendingMs)}`,
        s.lastAckAt ? ago(now - s.lastAckAt) : 'not yet',
        s.lastError ? `${s.lastError.message} (${ago(now - s.lastError.at)})` : 'none',
      ),
    ),
  )
  $('events-empty').textContent = events.length === 0 ? 'No presence event retained yet.' : ''
  $('event-rows').replaceChildren(...events.map((e) => row(time(e.ts), e.userId, el('td', e.type, e.type === 'user.online' ? 'online' : 'offline'), e.cause, el('td', String(e.connections), 'num'))))
}

// Rooms

async function lookUpRoom(room) {
  const view = await api(`/api/rooms/${encodeURIComponent(room)}`)
  lookedUpRoom = view.room
  $('room-view').hidden = false
  $('room-summary').replaceChildren(
    el('strong', view.room),
    view.exists ? `: ${plural(view.members, 'durable member')}; ${view.online} online now (token members included).` : `: no durable member; ${view.online} online through their tokens.`,
  )
  const users = view.users ?? []
  $('room-users').replaceChildren(...(view.users === undefined ? [row(el('td', `${view.online} online: too many to list.`, 'muted'), '')] : users.length === 0 ? [row(el('td', 'Nobody online.', 'muted'), '')] : users.map((u) => row(u.userId, u.nodes.join(', ')))))
  $('room-offline').textContent = view.offline && view.offline.length > 0 ? `Offline members: ${view.offline.join(', ')}` : ''
  $('room-members').textContent = view.firstMembers.length === 0 ? '' : `Durable members${view.moreMembers ? ' (first ones)' : ''}: ${view.firstMembers.join(', ')}`
}

onLookup('room', 'room-name', lookUpRoom)

// Session

$('login').addEventListener('submit', async (event) => {
  event.preventDefault()
  try {
    const answer = await api('/api/login', { method: 'POST', body: { password: $('password').value } })
    $('login-error').textContent = ''
    csrfToken = answer.csrfToken
    show(true)
  } catch (err) {
    $('login-error').textContent = err.message
  } finally {
    $('password').value = ''
  }
})

$('logout').addEventListener('click', async () => {
  await api('/api/logout', { method: 'POST', body: {} }).catch(() => undefined)
  csrfToken = (await api('/api/session')).csrfToken
  show(false)
})

window.addEventListener('hashchange', route)

const session = await api('/api/session')
csrfToken = session.csrfToken
show(session.authenticated === true)
