export {
  Switchboard,
  DEAD_CONNECTION_CODE,
  GAP_CODE,
  type PositionStorage,
  type Clock,
  type ConnectionState,
  type Push,
  type StateChange,
  type SwitchboardOptions,
  type WebSocketFactory,
  type WebSocketLike,
} from './switchboard.js'
export { CloseCode, CloseReasons, Reconnect, closeReasonOf, reconnectDelayMs, shouldReconnect, type CloseReason, type Position } from '@switchboard/wire'
