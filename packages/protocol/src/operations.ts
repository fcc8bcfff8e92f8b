import { z } from 'zod'
import {
  BroadcastRequest,
  DisconnectRequest,
  PresenceParams,
  PresenceQuery,
  PushRequest,
  RevokeRequest,
  RoomAddRequest,
  RoomMembersQuery,
  RoomName,
  RoomPushRequest,
  RoomRemoveRequest,
} from './push-api.js'

/**
 * What an HTTP request of the operation carries besides its path: a JSON body, a JSON body that
 * may be empty, its query string, or nothing (a body sent anyway is read and ignored).
 */
export type OperationInput = 'body' | 'optional-body' | 'query' | 'none'

/** One API operation, as both ingresses (HTTP and the pipeline) and every client see it. */
export interface OperationSpec {
  method: 'GET' | 'POST' | 'DELETE'
  /** The HTTP path; `:name` segments are parameters, carried as body fields of the same name on the pipeline. */
  path: string
  summary: string
  /** Changes nothing on the router: safe to send again after its connection was lost. */
  isRead: boolean
  /** Takes an Idempotency-Key (the pipeline's `idempotencyKey`): run once per key. */
  isIdempotent: boolean
  input: OperationInput
  /** The path's parameters (the pipeline body's fields of the same names). */
  params?: z.ZodObject
  /** The HTTP body, or (input `query`) the query's fields. */
  body?: z.ZodType
}

const RoomParams = z.strictObject({ room: RoomName })

/**
 * Every API operation, once: its name is the pipeline's `op`, and HTTP routing, the pipeline's
 * dispatch, the backend client's HTTP fallback and the README's tables follow from its row
 * (test/unit/operations.test.ts keeps them in step). The schemas are the ones the router
 * validates with, so a generator can read them (`z.toJSONSchema`).
 */
export const OPERATIONS = {
  push: {
    method: 'POST', path: '/v1/push', summary: 'push to users (`to`) or to a room\'s members (`room`)',
    isRead: false, isIdempotent: true, input: 'body', body: z.union([PushRequest, RoomPushRequest]),
  },
  broadcast: {
    method: 'POST', path: '/v1/broadcast', summary: 'push to every socket on every live edge',
    isRead: false, isIdempotent: true, input: 'body', body: BroadcastRequest,
  },
  presence: {
    method: 'GET', path: '/v1/presence/:userId', summary: 'one user\'s live connections',
    isRead: true, isIdempotent: false, input: 'none', params: PresenceParams,
  },
  'presence.query': {
    method: 'POST', path: '/v1/presence/query', summary: 'which of up to 10,000 users are online',
    isRead: true, isIdempotent: false, input: 'body', body: PresenceQuery,
  },
  disconnect: {
    method: 'POST', path: '/v1/disconnect', summary: 'close every socket of a user (4500)',
    isRead: false, isIdempotent: false, input: 'body', body: DisconnectRequest,
  },
  'user.revoke': {
    method: 'POST', path: '/v1/users/:userId/revoke', summary: 'sign a user out everywhere: refuse their tokens issued until now, close their sockets (4503)',
    isRead: false, isIdempotent: false, input: 'optional-body', params: PresenceParams, body: RevokeRequest.omit({ userId: true }),
  },
  nodes: {
    method: 'GET', path: '/v1/nodes', summary: 'live edges and their connection counts',
    isRead: true, isIdempotent: false, input: 'none',
  },
  'room.add': {
    method: 'POST', path: '/v1/rooms/:room/members', summary: 'add members to a room (idempotent)',
    isRead: false, isIdempotent: false, input: 'body', params: RoomParams, body: RoomAddRequest,
  },
  'room.remove': {
    method: 'POST', path: '/v1/rooms/:room/members/remove', summary: 'remove members from a room (a kick is one id)',
    isRead: false, isIdempotent: false, input: 'body', params: RoomParams, body: RoomRemoveRequest,
  },
  'room.members': {
    method: 'GET', path: '/v1/rooms/:room/members', summary: 'one page of a room\'s members, in name order',
    isRead: true, isIdempotent: false, input: 'query', params: RoomParams, body: RoomMembersQuery,
  },
  'room.info': {
    method: 'GET', path: '/v1/rooms/:room', summary: 'whether a room exists, and its size',
    isRead: true, isIdempotent: false, input: 'none', params: RoomParams,
  },
  'room.presence': {
    method: 'GET', path: '/v1/rooms/:room/presence', summary: 'who of a room is connected now',
    isRead: true, isIdempotent: false, input: 'none', params: RoomParams,
  },
  'room.clear': {
    method: 'POST', path: '/v1/rooms/:room/clear', summary: 'remove every member; the room lives on',
    isRead: false, isIdempotent: false, input: 'none', params: RoomParams,
  },
  'room.delete': {
    method: 'DELETE', path: '/v1/rooms/:room', summary: 'remove every member and end the room',
    isRead: false, isIdempotent: false, input: 'none', params: RoomParams,
  },
} as const satisfies Record<string, OperationSpec>

export type OperationName = keyof typeof OPERATIONS

export const OPERATION_NAMES = Object.keys(OPERATIONS) as OperationName[]

/** The `:name` parameters of a path template, in order. */
export function pathParamsOf(template: string): string[] {
  return template.split('/').flatMap((s) => (s.startsWith(':') ? [s.slice(1)] : []))
}

/** The path of `template` with each `:name` replaced by `params[name]`, percent-encoded. */
export function fillPath(template: string, params: Readonly<Record<string, unknown>>): string {
  return template.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(String(params[name] ?? '')))
}
