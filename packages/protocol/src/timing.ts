/**
 * Awaits `call`, then ends its timer (the function a prom-client `startTimer()` returns)
 * with `result` `ok` or `error`. The one way both services time calls in their histograms.
 */
export async function timeCall<T>(end: (labels: { result: 'ok' | 'error' }) => unknown, call: Promise<T>): Promise<T> {
  try {
    const value = await call
    end({ result: 'ok' })
    return value
  } catch (err) {
    end({ result: 'error' })
    throw err
  }
}
