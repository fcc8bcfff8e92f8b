// The admin page: no framework, no inline script (the CSP forbids it). Talks to /api with the
// session cookie, and sends the CSRF token on every state-changing call.
const $ = (id) => document.getElementById(id)
let csrfToken = ''
let timer

async function api(path, { method = 'GET', body } = {}) {
  const headers = method === 'GET' ? {} : { 'content-type': 'application/json', 'x-csrf-token': csrfToken }
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' })
  const json = await res.json().catch(() => ({}))
  return { status: res.status, body: json }
}

function show(loggedIn) {
  $('login').hidden = loggedIn
  $('cluster').hidden = !loggedIn
  $('logout').hidden = !loggedIn
  clearInterval(timer)
  if (loggedIn) {
    void refresh()
    timer = setInterval(refresh, 2_000)
  } else {
    $('password').focus()
  }
}

function banner(text) {
  $('banner').textContent = text
  $('banner').hidden = !text
}

function cell(text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  return td
}

async function refresh() {
  let res
  try {
    res = await api('/api/cluster')
  } catch {
    return banner('The router does not answer.')
  }
  if (res.status === 401) return show(false)
  banner(res.body.registry === 'ok' ? '' : 'Redis is unavailable: the registry cannot be read. Sockets stay open; pushes answer 503.')
  const rows = res.body.nodes.map((n) => {
    const tr = document.createElement('tr')
    const late = n.leaseAgeMs > (n.leaseTtlMs * 2) / 3
    tr.append(
      cell(n.nodeId),
      cell(String(n.connections), 'num'),
      cell(n.draining ? 'draining' : 'serving'),
      cell(new Date(n.startedAt).toLocaleString()),
      cell(`renewed ${(n.leaseAgeMs / 1000).toFixed(1)} s ago`, late ? 'late' : 'num'),
    )
    return tr
  })
  $('nodes').replaceChildren(...rows)
  const total = res.body.nodes.reduce((s, n) => s + n.connections, 0)
  $('cluster-summary').textContent = res.body.nodes.length === 0 ? 'No live edge.' : `${res.body.nodes.length} live edge${res.body.nodes.length === 1 ? '' : 's'}, ${total} connections.`
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault()
  const res = await api('/api/login', { method: 'POST', body: { password: $('password').value } })
  $('password').value = ''
  if (res.status !== 200) {
    $('login-error').textContent = res.body.error?.message ?? 'login failed'
    return
  }
  $('login-error').textContent = ''
  csrfToken = res.body.csrfToken
  show(true)
})

$('logout').addEventListener('click', async () => {
  await api('/api/logout', { method: 'POST', body: {} })
  const session = await api('/api/session')
  csrfToken = session.body.csrfToken
  show(false)
})

const session = await api('/api/session')
csrfToken = session.body.csrfToken
show(session.body.authenticated === true)
