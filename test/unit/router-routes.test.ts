import t from 'tap'
import { SwitchboardError } from '@switchboard/protocol'
import { routeOf } from '@switchboard/router'

const name = (method: string, path: string) => {
  const r = routeOf(method, path)
  return r instanceof SwitchboardError ? `error ${r.code}` : r === undefined ? 'none' : r.params.userId === undefined ? r.name : `${r.name}(${r.params.userId})`
}

t.test('every route, and the methods it takes', async (t) => {
  t.equal(name('POST', '/v1/push'), 'push')
  t.equal(name('POST', '/v1/broadcast'), 'broadcast')
  t.equal(name('POST', '/v1/disconnect'), 'disconnect')
  t.equal(name('POST', '/v1/presence/query'), 'presence.query')
  t.equal(name('GET', '/v1/presence/query'), 'presence(query)', 'GET of query is a user named query')
  t.equal(name('HEAD', '/v1/presence/ann'), 'presence(ann)')
  t.equal(name('GET', '/v1/nodes'), 'nodes')
  for (const p of ['healthz', 'readyz', 'metrics']) t.equal(name('GET', `/${p}`), p)
  t.equal(name('GET', '/v1/push'), 'none')
  t.equal(name('PUT', '/v1/push'), 'none')
  t.equal(name('POST', '/healthz'), 'none')
  t.equal(name('DELETE', '/v1/presence/ann'), 'none')
  const room = (method: string, path: string) => {
    const r = routeOf(method, path)
    return r && !(r instanceof SwitchboardError) ? `${r.name}(${r.params.room})` : 'none'
  }
  t.equal(room('GET', '/v1/rooms/m%2F42'), 'room.info(m/42)')
  t.equal(room('DELETE', '/v1/rooms/m'), 'room.delete(m)')
  t.equal(room('GET', '/v1/rooms/m/members'), 'room.members(m)')
  t.equal(room('POST', '/v1/rooms/m/members'), 'room.add(m)')
  t.equal(room('POST', '/v1/rooms/m/members/remove'), 'room.remove(m)')
  for (const [method, path] of [['POST', '/v1/rooms/m'], ['DELETE', '/v1/rooms/m/members'], ['GET', '/v1/rooms/m/members/remove'], ['POST', '/v1/rooms/m/other'], ['GET', '/v1/rooms'], ['POST', '/v1/rooms/m/members/remove/x']]) {
    t.equal(room(method!, path!), 'none', `${method} ${path}`)
  }
})

t.test('percent-escapes are decoded per segment; an escaped slash never splits one', async (t) => {
  t.equal(name('GET', '/%76%31/nodes'), 'nodes')
  t.equal(name('POST', '/v1/pu%73h'), 'push')
  t.equal(name('GET', '/v1/presence/a%2Fb'), 'presence(a/b)')
  t.equal(name('GET', '/v1/presence/%F0%9F%99%82'), 'presence(🙂)')
  t.equal(name('GET', '/v1%2Fnodes'), 'none')
  t.equal(name('GET', '/v1/presence/%ZZ'), 'error invalid_request')
  t.equal(name('GET', '/v1/presence/%C3%28'), 'error invalid_request', 'not UTF-8')
})

t.test('near misses are no route', async (t) => {
  for (const p of ['/', '/v1', '/v1/', '/v1/push/', '/v1//push', '//v1/push', '/V1/push', '/v1/PUSH', '/v1/presence', '/v1/presence/a/b', '/v1/../v1/push', '/v1/push;x', '*', 'v1/push', '/v2/push']) {
    t.equal(name('POST', p), 'none', p)
  }
  t.equal(name('GET', '/v1/presence/'), 'presence()', 'an empty id is routed, then refused by validation')
})
