import { randomBytes } from 'node:crypto'

export interface DevSecrets {
  jwtSecret: string
  apiKey: string
  internalToken: string
  /** The admin web's password (ROUTER_ADMIN_PASSWORD), unless the environment sets one. */
  adminPassword: string
}

/**
 * The admin web for a local run: on ROUTER_ADMIN_PORT (default 3001, 0: any free port), on
 * 127.0.0.1 unless ROUTER_ADMIN_HOST says otherwise, with this run's password unless
 * ROUTER_ADMIN_PASSWORD is set.
 */
export function localAdminEnv(env: Record<string, string | undefined>, secrets: DevSecrets): Record<string, string> {
  return {
    ROUTER_ADMIN_PORT: env.ROUTER_ADMIN_PORT || '3001',
    ROUTER_ADMIN_HOST: env.ROUTER_ADMIN_HOST || '127.0.0.1',
    ROUTER_ADMIN_PASSWORD: env.ROUTER_ADMIN_PASSWORD || secrets.adminPassword,
  }
}

/** Fresh secrets for one local run: nothing is hard-coded, nothing outlives the run. */
export function generateSecrets(): DevSecrets {
  const hex = (n: number) => randomBytes(n).toString('hex')
  return { jwtSecret: hex(32), apiKey: `sk_dev_${hex(16)}`, internalToken: hex(24), adminPassword: hex(12) }
}

export { mintDevToken } from '@switchboard/cli'
