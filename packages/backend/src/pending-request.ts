import type { PipelineOp } from '@switchboard/protocol'
import type { SwitchboardApiError } from './errors.js'
import { isRead, type Operation } from './operations.js'

/** An answer with the HTTP API's status and body, from either transport. */
export interface Answer {
  status: number
  body: unknown
}

/** Where a call is: waiting for an in-flight slot, or sent on one of the transports. */
export type Stage = 'waiting' | 'pipeline' | 'http'

/** One call from the moment it is made to its settling; it is settled exactly once. */
export class PendingRequest implements Operation {
  readonly id: string
  readonly op: PipelineOp
  readonly body: unknown
  /** `body` as JSON, serialized once for either transport; undefined when there is none. */
  readonly bodyJson: string | undefined
  /** A read, or a write with an idempotency key: sent again once over HTTP if its pipeline is lost. */
  readonly isResendable: boolean
  readonly idempotencyKey: string | undefined
  readonly promise: Promise<unknown>
  stage: Stage = 'waiting'
  isSettled = false
  /** Whether it holds one of the client's `maxInFlight` slots. */
  hasSlot = false
  /** Set once a read lost with its pipeline has been sent again over HTTP. */
  isRetried = false
  timer: NodeJS.Timeout | undefined
  /** Aborts the HTTP call, when it went over HTTP. */
  abort: AbortController | undefined
  #resolve!: (value: unknown) => void
  #reject!: (err: SwitchboardApiError) => void

  /** Throws what JSON.stringify throws for a body that is not JSON (a BigInt, a cycle). */
  constructor(id: string, op: PipelineOp, body: unknown, idempotencyKey?: string) {
    this.id = id
    this.op = op
    this.body = body
    this.bodyJson = body === undefined ? undefined : JSON.stringify(body)
    this.idempotencyKey = idempotencyKey
    this.isResendable = isRead(op) || idempotencyKey !== undefined
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  /** The pipeline frame: `{"id","op","body"}`, and `"idempotencyKey"` when there is one. */
  frame(): string {
    const key = this.idempotencyKey === undefined ? '' : `,"idempotencyKey":${JSON.stringify(this.idempotencyKey)}`
    const head = `{"id":${JSON.stringify(this.id)},"op":${JSON.stringify(this.op)}${key}`
    return this.bodyJson === undefined ? `${head}}` : `${head},"body":${this.bodyJson}}`
  }

  /** Settles once; later calls are ignored. Returns whether this call settled it. */
  settle(outcome: { value: unknown } | { error: SwitchboardApiError }): boolean {
    if (this.isSettled) return false
    this.isSettled = true
    clearTimeout(this.timer)
    this.timer = undefined
    if ('error' in outcome) this.#reject(outcome.error)
    else this.#resolve(outcome.value)
    return true
  }
}
