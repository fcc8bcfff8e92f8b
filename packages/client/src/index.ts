export {
  Switchboard,
  DEAD_CONNECTION_CODE,
  type Clock,
  type ConnectionState,
  type Push,
  type StateChange,
  type SwitchboardOptions,
  type WebSocketFactory,
  type WebSocketLike,
} from './switchboard.js'
export { CloseCode, Reconnect, reconnectDelayMs, shouldReconnect } from '@switchboard/wire'
