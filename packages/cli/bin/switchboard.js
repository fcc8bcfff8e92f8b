#!/usr/bin/env node
// A committed shim, so the bin link works before the first build has made dist/.
import { main } from '../dist/main.js'

process.exitCode = await main(process.argv.slice(2), process.env)
