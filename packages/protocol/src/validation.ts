import type { z } from 'zod'
import { SwitchboardError } from './errors.js'

/** Parses `input` or throws `invalid_request` whose message names the first bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what = 'body'): z.output<S> {
  const r = schema.safeParse(input)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : what
  throw new SwitchboardError('invalid_request', `${field}: ${issue?.message ?? 'invalid'}`)
}
