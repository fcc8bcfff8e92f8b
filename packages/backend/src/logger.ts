/**
 * What the client logs through: pino's signature (fields first, then a constant message),
 * so a pino logger or a child of one can be passed as is. The client logs connection
 * changes only, never per request.
 */
export interface BackendLogger {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
}

const ignore = () => undefined
export const silentLogger: BackendLogger = { debug: ignore, info: ignore, warn: ignore }
