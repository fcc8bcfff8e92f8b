import { SwitchboardError } from '@switchboard/protocol'

/**
 * A request body as JSON, on both ingresses: a leading BOM is skipped; empty, malformed, or
 * carrying `__proto__` or `constructor` keys (prototype-pollution attempts, docs/SECURITY.md)
 * is `invalid_request`. V8's JSON.parse is iterative, so no nesting depth overflows it;
 * the schemas bound `data`'s depth before anything serializes it again.
 */
export function parseJsonBody(body: Buffer | string | undefined, checkKeys = true): unknown {
  let text = typeof body === 'string' ? body : body?.toString('utf8') ?? ''
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  if (text.trim() === '') throw new SwitchboardError('invalid_request', 'body: required')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new SwitchboardError('invalid_request', 'body: not valid JSON')
  }
  if (checkKeys) refusePrototypeKeys(text, value)
  return value
}

/** Throws `invalid_request` when `value` (parsed from `text`) has `__proto__` or `constructor` keys. */
export function refusePrototypeKeys(text: string, value: unknown): void {
  if ((text.includes('__proto__') || text.includes('constructor')) && hasPrototypeKeys(value)) {
    throw new SwitchboardError('invalid_request', 'body: must not contain "__proto__" or "constructor" keys')
  }
}

function hasPrototypeKeys(value: unknown): boolean {
  const stack = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== 'object') continue
    if (!Array.isArray(v) && (Object.hasOwn(v, '__proto__') || Object.hasOwn(v, 'constructor'))) return true
    for (const child of Object.values(v)) stack.push(child)
  }
  return false
}
