export {
  Switchboard,
  ACK_EVERY_MS,
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
export { CloseCode, CloseReasons, MAX_ACK_IDS, Reconnect, ackFrame, closeReasonOf, reconnectDelayMs, shouldReconnect, type CloseReason, type Position } from '@switchboard/wire'
