// Preloaded (node --expose-gc --import) into every server the bench starts: on the IPC
// message 'gc' it collects garbage twice and answers with process.memoryUsage() and the V8
// heap's spaces, so memory per connection is measured after GC, the same way for every system.
// On 'snapshot' it writes a heap snapshot to the working directory and answers with its file name
// (to compare two of them in Chrome's DevTools when memory grows).
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'

if (process.send) {
  process.on('message', (message) => {
    if (message === 'snapshot') return process.send({ snapshot: writeHeapSnapshot() })
    if (message !== 'gc') return
    globalThis.gc?.()
    globalThis.gc?.()
    // The V8 heap's spaces too (committed and used bytes of each): where a difference in RSS sits.
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]))
    process.send({ memory: process.memoryUsage(), spaces })
  })
  process.channel?.unref() // the channel alone never keeps a server alive
}
