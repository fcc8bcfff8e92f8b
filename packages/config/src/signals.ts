/**
 * A service's end: on SIGTERM (SIGINT does the same) it runs `stop` once, then `cleanup`
 * (closing its Redis client), and exits 0, or 1 saying why stopping failed.
 */
export function exitOnSignal(stop: () => Promise<void>, cleanup: () => void, log: { error(obj: object, msg: string): void }): void {
  process.once('SIGTERM', () => {
    stop().then(
      () => {
        cleanup()
        process.exit(0)
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  })
  process.once('SIGINT', () => process.kill(process.pid, 'SIGTERM'))
}

/** The service's configuration, or the process ends at once (exit 1), its message naming every bad variable. */
export function configOrExit<C>(service: string, load: () => C): C {
  try {
    return load()
  } catch (err) {
    process.stderr.write(`${service}: ${(err as Error).message}\n`)
    process.exit(1)
  }
}
