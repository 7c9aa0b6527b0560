#!/usr/bin/env node
// npm run stress:ci — the bounded chaos suite CI runs (about 2 minutes 50 seconds on 2 cores):
//   three chaos runs on the file store (weighted holds, fair and barging waiters: the checker sums
//   weights and judges the order fair waiters are served in) and one on the PostgreSQL store (its
//   own throwaway cluster, with server restarts) that must find no violation (fixed seeds and one
//   random seed, printed), each with a work floor: on a loaded machine it runs longer (bounded)
//   rather than proving little; and seven negative controls (control.mjs) — the same harness
//   against deliberately broken engines, selected through FileStore's test-only `faults`, a faulty
//   PostgreSQL claim function or a harness fault (weightBlind, unfair), with the fault's window
//   forced by a rally (or, for unfair, by pausing queued waiters) — that the checker must catch.
// Exit 0 only when every clean run is clean and reached its floor, and every broken engine is caught.
import * as fs from 'node:fs'
import { formatControl, runNegativeControl } from './control.mjs'
import { DEFAULT_INTERNAL, runStress } from './driver.mjs'
import { formatSummary } from './run.mjs'

const randomSeed = (Math.random() * 2 ** 32) >>> 0
// Floors at a quarter to a half of what these runs did in their time on a busy 2-core machine
// (seed 1: 1,336 grants, 52 kills, 29 limit changes in 30 s; seed 2: 498, 44, 22 in 20 s), so only
// a starved machine runs longer - and then it does the work instead of passing on less.
const clean = [
  { name: 'chaos, seed 1', o: { procs: 6, seconds: 30, limit: 2, keys: 2, seed: 1, minWork: { grants: 300, kills: 15, limitChanges: 5 }, maxSeconds: 120 } },
  { name: 'chaos, mutex, seed 2', o: { procs: 5, seconds: 20, limit: 1, keys: 1, seed: 2, minWork: { grants: 200, kills: 10, limitChanges: 3 }, maxSeconds: 90 } },
  {
    name: `chaos, random seed ${randomSeed}`,
    o: { procs: 6, seconds: 25, limit: 3, keys: 3, seed: randomSeed, minWork: { grants: 250, kills: 12, limitChanges: 4 }, maxSeconds: 100 },
  },
]
// The PostgreSQL store (its own throwaway cluster): SIGKILL/SIGSTOP of holders, server restarts,
// limit changes. Floors at about half of what it did here in its time (seed 7: ~600 grants, ~30
// kills, ~20 limit changes, 5 restarts in 25 s).
clean.push({
  name: 'chaos on PostgreSQL, seed 7',
  o: { store: 'postgres', procs: 5, seconds: 25, limit: 2, keys: 2, seed: 7, minWork: { grants: 200, kills: 10, limitChanges: 5, restarts: 3 }, maxSeconds: 75 },
})
const controls = [
  { name: 'negative control: no gate', control: 'noGate', seed: 3 },
  { name: 'negative control: reclaim on suspicion', control: 'reclaimOnSuspicion', seed: 4 },
  { name: 'negative control: one holder over the limit', control: 'overAdmit', seed: 5 },
  // 4 s suffice: an unfair engine overtakes, and weight-blind rallies meet, several times a second.
  { name: 'negative control: an engine blind to weights', control: 'weightBlind', seed: 9, seconds: 4 },
  { name: 'negative control: an engine without a queue', control: 'unfair', seed: 10, seconds: 4 },
  { name: 'negative control: PostgreSQL claim function one holder over the limit', control: 'pgOverAdmit', seed: 6 },
  { name: 'negative control: PostgreSQL session witness on the wrong lock', control: 'pgWrongLockKey', seed: 8 },
]

if (!fs.existsSync(DEFAULT_INTERNAL)) {
  console.error(`${DEFAULT_INTERNAL} is missing: run \`npm run build\` first`)
  process.exit(2)
}

let failures = 0
const started = performance.now()
const took = (t) => `   (${Math.round((performance.now() - t) / 100) / 10}s)`
for (const run of clean) {
  console.log(`\n== ${run.name}`)
  const t = performance.now()
  const res = await runStress(run.o)
  console.log(formatSummary(res))
  const enough = res.summary.work?.done !== false
  if (!res.ok) {
    for (const v of res.violations.slice(0, 12)) console.log(`   - ${JSON.stringify(v)}`)
    console.log(`   FAILED: seed ${res.seed}; reproduce the schedule with: ${res.command}`)
  } else if (!enough) {
    console.log(`   INCONCLUSIVE: the run did not reach its work floor in ${run.o.maxSeconds}s; reproduce with: ${res.command}`)
  }
  if (res.ok && enough) fs.rmSync(res.runDir, { recursive: true, force: true })
  else {
    failures++
    console.log(`   logs kept in ${res.runDir}`)
  }
  console.log(took(t))
}
for (const c of controls) {
  console.log(`\n== ${c.name}`)
  const t = performance.now()
  const out = await runNegativeControl(c.control, { seed: c.seed, procs: 4, seconds: c.seconds ?? 6, attempts: 3 })
  console.log(formatControl(out))
  if (out.verdict !== 'caught') failures++
  console.log(took(t))
}
const runs = clean.length + controls.length
const total = Math.round((performance.now() - started) / 1000)
console.log(`\nstress:ci: ${runs - failures} of ${runs} runs as expected in ${total}s (random seed was ${randomSeed})`)
process.exit(failures === 0 ? 0 : 1)
