export { SwitchboardBackend, type CallOptions, type ClientState } from './client.js'
export { SwitchboardApiError, clientErrorCodes, type BackendErrorCode, type ClientErrorCode } from './errors.js'
export type { BackendLogger } from './logger.js'
export type { BackendOptions } from './options.js'
export { mintClientToken, type ClientTokenOptions } from './token.js'
export type {
  BroadcastRequest,
  BroadcastResponse,
  DisconnectRequest,
  DisconnectResponse,
  NodeView,
  NodesResponse,
  PresenceConnection,
  PresenceQueryResponse,
  PresenceResponse,
  PushRequest,
  PushResponse,
  RevokeResponse,
  RoomAddResponse,
  RoomClearResponse,
  RoomDeleteResponse,
  RoomInfoResponse,
  RoomMembersResponse,
  RoomPresenceResponse,
  RoomPushRequest,
  RoomPushResponse,
  RoomRemoveResponse,
  RoutedPushResponse,
  AckedPushResponse,
  PushWait,
} from '@switchboard/protocol'
export { verifyPresenceWebhook, WebhookVerificationError, type VerifyWebhookOptions, type WebhookHeaders } from './webhooks.js'
export type { PresenceEvent, PresenceCause } from '@switchboard/protocol'
