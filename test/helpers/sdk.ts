import WebSocket from 'ws'
import { Switchboard, type Push, type StateChange, type SwitchboardOptions, type WebSocketFactory } from '@switchboard/client'
import type { TestScope } from './redis.js'

export interface SdkClient {
  readonly sb: Switchboard
  /** Every push handed to the app, in order. */
  readonly pushes: Push[]
  /** Every state change, in order. */
  readonly states: StateChange[]
  /** The connections' welcomes (not the token refreshes that also say `connected`). */
  welcomes(): Extract<StateChange, { state: 'connected' }>[]
}

/** An app's client: the SDK on Node (the ws library), connected at once, closed with `t`; no stored position unless given. */
export function sdkClient(t: TestScope, options: Omit<SwitchboardOptions, 'WebSocket'>): SdkClient {
  const sb = new Switchboard({ storage: null, ...options, WebSocket: WebSocket as unknown as WebSocketFactory })
  const pushes: Push[] = []
  const states: StateChange[] = []
  sb.on('push', (p) => pushes.push(p))
  sb.on('state', (s) => states.push(s))
  t.teardown(() => sb.close())
  sb.connect()
  const welcomes = () => states.filter((s): s is Extract<StateChange, { state: 'connected' }> => s.state === 'connected' && s.token === undefined)
  return { sb, pushes, states, welcomes }
}
