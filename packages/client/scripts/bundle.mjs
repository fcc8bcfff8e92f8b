// Builds the browser bundle of the SDK (one minified ESM file, its only dependency, the wire
// format, inlined) to dist/browser/switchboard.min.js, and reports its size minified and gzipped.
//   node packages/client/scripts/bundle.mjs [--quiet]   (npm run build runs it quietly)
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const root = new URL('../', import.meta.url)
export const BUNDLE_PATH = fileURLToPath(new URL('dist/browser/switchboard.min.js', root))

/** Bundles and writes the file; resolves with its sizes in bytes. */
export async function bundleBrowser() {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('src/index.ts', root))],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    write: false,
    legalComments: 'none',
  })
  const code = result.outputFiles[0].contents
  await mkdir(fileURLToPath(new URL('dist/browser/', root)), { recursive: true })
  await writeFile(BUNDLE_PATH, code)
  return { minifiedBytes: code.length, gzippedBytes: gzipSync(code, { level: 9 }).length }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { minifiedBytes, gzippedBytes } = await bundleBrowser()
  if (!process.argv.includes('--quiet')) console.log(`${BUNDLE_PATH}: ${minifiedBytes} B minified, ${gzippedBytes} B gzipped`)
}
