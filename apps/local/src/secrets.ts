import { randomBytes } from 'node:crypto'

export interface DevSecrets {
  jwtSecret: string
  apiKey: string
  internalToken: string
}

/** Fresh secrets for one local run: nothing is hard-coded, nothing outlives the run. */
export function generateSecrets(): DevSecrets {
  const hex = (n: number) => randomBytes(n).toString('hex')
  return { jwtSecret: hex(32), apiKey: `sk_dev_${hex(16)}`, internalToken: hex(24) }
}

export { mintDevToken } from '@switchboard/cli'
