// Preloaded (node --expose-gc --import) into every server the bench starts: on the IPC
// message 'gc' it collects garbage twice and answers with process.memoryUsage(), so memory per
// connection is measured after GC, the same way for every system.
if (process.send) {
  process.on('message', (message) => {
    if (message !== 'gc') return
    globalThis.gc?.()
    globalThis.gc?.()
    process.send({ memory: process.memoryUsage() })
  })
  process.channel?.unref() // the channel alone never keeps a server alive
}
