// The SDK's browser bundle: built from source by esbuild, minified + gzipped within 5 KB, free
// of any Node module, and working as a plain ES module.
import { readFile } from 'node:fs/promises'
import t from 'tap'
// @ts-expect-error: a build script in plain JS, without types
import { BUNDLE_PATH, bundleBrowser } from '../../packages/client/scripts/bundle.mjs'

const LIMIT_BYTES = 5 * 1024

t.test(`the browser bundle is at most ${LIMIT_BYTES} B gzipped and imports nothing`, async (t) => {
  const { minifiedBytes, gzippedBytes } = (await bundleBrowser()) as { minifiedBytes: number; gzippedBytes: number }
  t.comment(`@switchboard/client browser bundle: ${minifiedBytes} B minified, ${gzippedBytes} B gzipped`)
  t.ok(gzippedBytes <= LIMIT_BYTES, `${gzippedBytes} B gzipped`)
  const code = await readFile(BUNDLE_PATH as string, 'utf8')
  t.notMatch(code, /\bnode:|\brequire\(|\bimport\s*[\w{*]/, 'no import and no Node module left in the bundle')
  const mod = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)
  t.equal(typeof mod.Switchboard, 'function', 'exports Switchboard')
  t.equal(mod.shouldReconnect(4500), false)
  t.equal(mod.CloseCode.draining, 1001)
})
