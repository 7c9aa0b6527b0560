#!/usr/bin/env node
// npm run stress:ci — the bounded chaos suite CI runs (about 1.5 minutes on 2 cores):
//   three chaos runs that must find no violation (two fixed seeds and one random seed, printed),
//   and three negative controls — the same harness against deliberately broken engines, selected
//   through FileStore's test-only `faults` — that the checker must catch.
// Exit 0 only when every clean run is clean and every broken engine is caught.
import * as fs from 'node:fs'
import { DEFAULT_INTERNAL, runStress } from './driver.mjs'
import { formatSummary } from './run.mjs'

const randomSeed = (Math.random() * 2 ** 32) >>> 0
const runs = [
  { name: 'chaos, seed 1', o: { procs: 6, seconds: 30, limit: 2, keys: 2, seed: 1 }, expect: 'clean' },
  { name: 'chaos, mutex, seed 2', o: { procs: 5, seconds: 20, limit: 1, keys: 1, seed: 2 }, expect: 'clean' },
  { name: `chaos, random seed ${randomSeed}`, o: { procs: 6, seconds: 25, limit: 3, keys: 3, seed: randomSeed }, expect: 'clean' },
  { name: 'negative control: no gate', o: { procs: 4, seconds: 6, limit: 1, keys: 1, seed: 3, fault: 'noGate' }, expect: 'caught' },
  { name: 'negative control: reclaim on suspicion', o: { procs: 4, seconds: 6, limit: 1, keys: 1, seed: 4, fault: 'reclaimOnSuspicion' }, expect: 'caught' },
  { name: 'negative control: one holder over the limit', o: { procs: 4, seconds: 5, limit: 2, keys: 1, seed: 5, fault: 'overAdmit=1' }, expect: 'caught' },
]

if (!fs.existsSync(DEFAULT_INTERNAL)) {
  console.error(`${DEFAULT_INTERNAL} is missing: run \`npm run build\` first`)
  process.exit(2)
}

let failures = 0
const started = performance.now()
for (const run of runs) {
  console.log(`\n== ${run.name}`)
  const t = performance.now()
  const res = await runStress(run.o)
  console.log(formatSummary(res))
  const caught = !res.ok
  const good = run.expect === 'clean' ? res.ok : caught
  if (run.expect === 'caught') {
    console.log(caught ? `   negative control caught: ${Object.keys(res.summary.violationCounts).join(', ')}` : '   NEGATIVE CONTROL NOT CAUGHT: the checker saw no violation')
  }
  if (!good) {
    failures++
    if (run.expect === 'clean') {
      for (const v of res.violations.slice(0, 12)) console.log(`   - ${JSON.stringify(v)}`)
      console.log(`   FAILED: seed ${res.seed}; reproduce the schedule with: ${res.command}`)
    }
    console.log(`   logs kept in ${res.runDir}`)
  } else {
    fs.rmSync(res.runDir, { recursive: true, force: true })
  }
  console.log(`   (${Math.round((performance.now() - t) / 100) / 10}s)`)
}
const total = Math.round((performance.now() - started) / 1000)
console.log(`\nstress:ci: ${runs.length - failures} of ${runs.length} runs as expected in ${total}s (random seed was ${randomSeed})`)
process.exit(failures === 0 ? 0 : 1)
