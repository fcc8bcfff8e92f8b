export { startEdge, type Edge, type EdgeDeps } from './server.js'
export { EDGE_ENV_NAMES, EdgeEnv, TokenAlgorithm, loadEdgeConfig, type EdgeConfig } from './config.js'
export { JwksCache, TokenError, createTokenVerifier, type TokenKeys, type TokenRules, type TokenVerifier, type VerifiedToken } from './tokens.js'
export { tokenFromProtocols } from './auth.js'
