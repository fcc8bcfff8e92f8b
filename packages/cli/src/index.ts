export { main } from './main.js'
export { readSession, sessionFile, type LocalSession } from './session.js'
export { mintDevToken } from './token.js'
