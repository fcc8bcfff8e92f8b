export * from './auth.js'
export * from './errors.js'
export * from './frames.js'
export * from './internal.js'
export * from './push-api.js'
export * from './validation.js'
export * from './timing.js'
export * from './link.js'
export * from './pipeline.js'
export * from './operations.js'
export * from './presence-events.js'
export {
  BEARER_PROTOCOL_PREFIX,
  Backoff,
  PING_FRAME,
  RESUME_PROTOCOL_PREFIX,
  Reconnect,
  SUBPROTOCOL,
  WS_PATH,
  backoffCeilingMs,
  backoffDelayMs,
  isEpoch,
  parseResumeProtocol,
  reconnectDelayMs,
  resumeProtocol,
  type BackoffPolicy,
  type Position,
} from '@switchboard/wire'
