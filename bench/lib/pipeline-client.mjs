// A client of the router's pipelined ingress (packages/protocol/src/pipeline.ts): one websocket,
// many requests in flight, each answer matched to its request by id. It has the shape the
// publisher needs of Switchboard's backend client, `push(body) → answer body`, so swapping in
// @switchboard/backend changes only where the publisher builds its client.
import WebSocket from 'ws'

/** Opens `ws://host:port/v1/pipeline`; resolves with `{ push, close }` once the router accepted it. */
export function connectPipeline({ host = '127.0.0.1', port, apiKey }) {
  return new Promise((resolve, reject) => {
    // No permessage-deflate: the HTTP ingress is measured uncompressed too.
    const ws = new WebSocket(`ws://${host}:${port}/v1/pipeline`, { headers: { authorization: `Bearer ${apiKey}` }, perMessageDeflate: false })
    const pending = new Map()
    let nextId = 0
    let closed
    const failAll = (err) => {
      closed ??= err
      for (const call of pending.values()) call.reject(err)
      pending.clear()
    }
    let isOpen = false
    ws.once('open', () => {
      isOpen = true
      resolve(client)
    })
    // A refused upgrade (401) is an error before 'open'; ws has already left CONNECTING by then.
    ws.on('error', (err) => (isOpen ? failAll(err) : reject(err)))
    ws.on('close', (code, reason) => failAll(new Error(`pipeline closed ${code} ${reason}`)))
    ws.on('message', (data) => {
      const answer = JSON.parse(data.toString())
      const call = pending.get(answer.id)
      if (!call) {
        // `"id":null`: the router could not read one of our frames, so some caller would wait forever.
        failAll(new Error(`pipeline answered an unknown request: ${data.toString().slice(0, 200)}`))
        ws.close()
        return
      }
      pending.delete(answer.id)
      if (answer.status === 200) call.resolve(answer.body)
      else call.reject(new Error(`push answered ${answer.status}: ${JSON.stringify(answer.body)}`))
    })
    const client = {
      /** POST /v1/push's semantics: resolves with its answer body (`delivered`, `offline`, `failed`), rejects on any other status. */
      push: (body) =>
        new Promise((resolve, reject) => {
          if (closed) return reject(closed)
          const id = (nextId++).toString(36)
          pending.set(id, { resolve, reject })
          ws.send(`{"id":"${id}","op":"push","body":${JSON.stringify(body)}}`)
        }),
      close: () => ws.close(),
    }
  })
}
