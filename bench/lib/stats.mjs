/** p50/p90/p99/p99.9/max/mean of samples (ms), rounded to µs. */
export function percentiles(samples) {
  const sorted = Float64Array.from(samples).sort()
  const at = (p) => (sorted.length === 0 ? null : round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]))
  const mean = sorted.length === 0 ? null : round(sorted.reduce((a, b) => a + b, 0) / sorted.length)
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: at(1), mean }
}

export const round = (value, digits = 3) => (value === null || value === undefined || !Number.isFinite(value) ? null : Number(value.toFixed(digits)))

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor(sorted.length / 2)]
}

/** The least-squares slope of `ys` over `xs` (units of y per unit of x); null under two points. */
export function slope(xs, ys) {
  if (xs.length < 2) return null
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length
  const my = ys.reduce((a, b) => a + b, 0) / ys.length
  const sxy = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0)
  const sxx = xs.reduce((s, x) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? null : sxy / sxx
}
