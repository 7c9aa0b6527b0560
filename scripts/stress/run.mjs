#!/usr/bin/env node
// npm run stress -- [--procs N] [--seconds S] [--limit L] [--keys K] [--seed X] [--fault NAME]
//                   [--store file|postgres] [--ttl-ms MS] [--fair-share F]
//                   [--min-grants N] [--min-kills N] [--min-limit-changes N] [--min-restarts N] [--max-seconds S]
//                   [--stop-timeout MS] [--keep] [--json] [--expect-violation]
//
// Runs one chaos run against dist/internal.js (build first: npm run build) and checks it with the
// independent checker. Exit 0: no violation. Exit 1: violations (the seed and the command that
// reproduces the schedule are printed). Exit 2: usage or harness error. Exit 3: no violation, but
// the run did not reach its work floor (below).
// --store postgres runs the workers on a PostgreSQL store, on a throwaway cluster the driver
// starts and stops (scripts/pg/cluster.mjs), with server restarts among the chaos; --ttl-ms sets
// the store's TTL (default 2000).
// Workers ask for weights 1..limit (mostly 1) and make a share F of their acquires with
// `fair: true` (default 0.8; 0 on PostgreSQL, which has no queue yet); --fair-share 0 leaves the
// fairness check nothing to judge.
// --fault NAME passes a test-only fault to the FileStore (noGate, reclaimOnSuspicion,
// reclaimAfterMs=<ms>, ...), or with --store postgres installs a faulty claim function (overAdmit,
// wrongLockKey, ...: ClaimFault in lib/lease/postgres/schema.ts); --expect-violation inverts the exit code for free-running negative
// controls (the ones CI relies on are in control.mjs). --min-grants/--min-kills/
// --min-limit-changes set a work floor: the chaos goes on past --seconds, up to --max-seconds
// (default 4 x --seconds), until the run did that much; a run that did not get there exits 3.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DEFAULT_INTERNAL, PACKAGE_ROOT, runStress } from './driver.mjs'

const USAGE =
  'usage: npm run stress -- [--procs N] [--seconds S] [--limit L] [--keys K] [--seed X] [--fault NAME] [--store file|postgres] [--ttl-ms MS] [--fair-share F] [--min-grants N] [--min-kills N] [--min-limit-changes N] [--min-restarts N] [--max-seconds S] [--stop-timeout MS] [--keep] [--json] [--expect-violation]'

export function parseArgs(argv) {
  const o = {}
  const flags = { keep: false, json: false, expectViolation: false }
  const ints = { '--procs': 'procs', '--seconds': 'seconds', '--limit': 'limit', '--keys': 'keys', '--seed': 'seed', '--stop-timeout': 'stopTimeoutMs', '--max-seconds': 'maxSeconds', '--ttl-ms': 'ttlMs' }
  const floors = { '--min-grants': 'grants', '--min-kills': 'kills', '--min-limit-changes': 'limitChanges', '--min-restarts': 'restarts' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a in ints || a in floors) {
      const v = Number(argv[++i])
      const min = a === '--seed' || a === '--seconds' || a in floors ? 0 : 1
      if (!Number.isSafeInteger(v) || v < min || (a === '--seed' && v > 0xffffffff)) throw new Error(`${a} needs an integer >= ${min}`)
      if (a in floors) o.minWork = { ...o.minWork, [floors[a]]: v }
      else o[ints[a]] = v
    } else if (a === '--fault') {
      const v = argv[++i]
      if (!v || !/^[A-Za-z]+(=\d+)?$/.test(v)) throw new Error('--fault needs a name (noGate, reclaimOnSuspicion, reclaimAfterMs=<ms>, ...)')
      o.fault = v === 'none' ? null : v
    } else if (a === '--fair-share') {
      const v = Number(argv[++i])
      if (!(v >= 0 && v <= 1)) throw new Error('--fair-share needs a number in [0, 1]')
      o.fairShare = v
    } else if (a === '--store') {
      const v = argv[++i]
      if (v !== 'file' && v !== 'postgres') throw new Error('--store needs file or postgres')
      o.store = v
    } else if (a === '--keep') flags.keep = true
    else if (a === '--json') flags.json = true
    else if (a === '--expect-violation') flags.expectViolation = true
    else if (a === '--help' || a === '-h') {
      console.log(USAGE)
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  return { o, flags }
}

export function formatSummary(res) {
  const s = res.summary
  const c = s.chaos
  const lines = []
  lines.push(
    `seed ${s.seed}: ${s.procs} procs, ${s.keys} keys, limit ${s.limit}, ${s.seconds}s${s.store === 'postgres' ? `, PostgreSQL store (TTL ${s.ttlMs} ms)` : ''}${s.fault ? `, FAULT ${s.fault}` : ''} (ran ${s.durationS}s, ${s.workersStarted} workers started)`,
  )
  lines.push(
    `  chaos: ${c.kills} kills (${c.killsHolding} holding, ${c.killsMidClaim} mid-claim, ${c.killsRandom} random), ${c.stops} SIGSTOPs, ${c.limitChanges} limit changes, ${
      s.store === 'postgres' ? `${c.restarts} server restarts` : `${c.rootDeletions} lock-root deletions`
    }`,
  )
  const op = s.ops
  const f = s.fairness
  if (f) {
    const used = `  weights: peak used ${Object.values(s.perKey).map((k) => `${k.peakUsed}/${k.limitMax}`).join(', ')} (sum of weights / highest limit), ${s.ops.heavyGrants} grants of weight > 1, ${Object.values(s.perKey).reduce((n, k) => n + k.heavyShared, 0)} grants while a heavy hold shared the key`
    if (f.fairWaiters + f.excludedWiped === 0) lines.push(`${used}; fairness: no fair waiter was granted after queueing`)
    else lines.push(
      `${used}; fairness: ${f.fairWaiters} fair waiters granted after queueing, ${f.pairs} ordered pairs judged, ${f.overtakes} overtakes (${f.overtakenWaiters} waiters, most ${f.maxOvertakes} times${f.tryOvertakes ? `; ${f.tryOvertakes} by grants without a place` : ''}), ${f.excludedWiped} waits excluded by lock-root deletions, ${op.queuedWithoutPlace} fair first busy answers without a queue place; fair wait p50 ${f.waitMs.p50} ms, p99 ${f.waitMs.p99} ms, max ${f.waitMs.max} ms`,
    )
  }
  if (s.store === 'postgres') {
    const sig = Object.entries(op.lostSignals ?? {})
    lines.push(
      `  holds lost: ${op.lostHolds ?? 0} released=false; signals ${sig.length === 0 ? 'none' : sig.map(([k, n]) => `${k}=${n}`).join(', ')}; ${op.unavailable} store_unavailable during restarts`,
    )
  }
  lines.push(
    `  ops: ${op.acquires} acquires, ${op.grants} grants (${op.grantsAfterWaiting} after waiting), ${op.releasesOk} released, ${op.releasesFalse} release=false (${op.wiped} wiped by root deletion), ${op.busyWait} deadline misses (lease_busy; ${s.busyReturnedLateOver1s} unpaused ones answered >1 s after waitMs), ${op.busyTry} try-busy, ${op.errors} errors; grant wait p50 ${op.grantWaitMs.p50} ms, p99 ${op.grantWaitMs.p99} ms`,
  )
  for (const [key, k] of Object.entries(s.perKey)) {
    lines.push(
      `  key ${JSON.stringify(key)}: ${k.grants} grants, peak ${k.peakHolders} holders, limit ${k.limitMin}..${k.limitMax} (${k.limitChanges} changes), peak fresh holders per limit ${JSON.stringify(k.peakFreshHoldersPerLimit)}, ${k.reclaimsAfterKill} reclaims after kill (p50 ${k.reclaimLatencyMs.p50} ms), over-admission episodes ${k.overAdmissionEpisodes}`,
    )
  }
  const l = s.leftovers
  if (l.beforeSweep) {
    lines.push(
      `  leftovers: before final sweep ${l.beforeSweep.slotRecords} records of killed holders, ${l.beforeSweep.tmpFiles} tmp, ${l.beforeSweep.other} other; after sweep ${l.afterSweep.entries.length}`,
    )
  }
  if (s.work?.minWork) {
    const m = s.work.minWork
    lines.push(
      `  work floor ${m.grants ?? 0} grants, ${m.kills ?? 0} kills, ${m.limitChanges ?? 0} limit changes${m.restarts ? `, ${m.restarts} server restarts` : ''}: ${s.work.done ? 'reached' : 'NOT REACHED (the run proves little; inconclusive)'}`,
    )
  }
  if (s.rallies?.opened > 0) {
    lines.push(`  rallies (forced interleavings): ${s.rallies.opened} opened, ${s.rallies.scanMet} met inside a claim, ${s.rallies.met} met holding`)
  }
  lines.push(`  stop: ${s.stop.survivors} workers finished their loop, slowest ${s.stop.maxExitAfterStopMs} ms after the stop signal, ${s.stop.hung} hung (limit ${s.stop.stopTimeoutMs} ms)`)
  const vc = Object.entries(s.violationCounts)
  lines.push(vc.length === 0 ? '  violations: none' : `  VIOLATIONS: ${vc.map(([k, n]) => `${k}=${n}`).join(', ')}`)
  return lines.join('\n')
}

async function main() {
  let parsed
  try {
    parsed = parseArgs(process.argv.slice(2))
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`)
    return 2
  }
  const { o, flags } = parsed
  if (!fs.existsSync(DEFAULT_INTERNAL)) {
    console.error(`${DEFAULT_INTERNAL} is missing: run \`npm run build\` first`)
    return 2
  }
  const newest = newestSource(join(PACKAGE_ROOT, 'lib'))
  if (newest > fs.statSync(DEFAULT_INTERNAL).mtimeMs) {
    console.error('warning: lib/ has changed since dist/ was built; the run exercises the built code (npm run build)')
  }
  if (o.minWork && o.maxSeconds === undefined) o.maxSeconds = 4 * (o.seconds ?? 30)
  const res = await runStress({ ...o, log: (m) => console.error(m) })
  const inconclusive = res.ok && res.summary.work?.done === false
  if (flags.json) {
    console.log(JSON.stringify({ ok: res.ok, seed: res.seed, command: res.command, summary: res.summary, violations: res.violations, runDir: res.runDir }, null, 2))
  }
  else console.log(formatSummary(res))
  if (!res.ok) {
    if (!flags.json) {
      for (const v of res.violations.slice(0, 12)) console.log(`  - ${JSON.stringify(v)}`)
    }
    console.log(`FAILED: seed ${res.seed}; reproduce the schedule with: ${res.command}`)
    console.log(`logs kept in ${res.runDir}`)
  } else if (inconclusive) {
    console.log(`INCONCLUSIVE: seed ${res.seed}; the run did not reach its work floor; reproduce with: ${res.command}`)
    console.log(`logs kept in ${res.runDir}`)
  } else if (!flags.keep) {
    fs.rmSync(res.runDir, { recursive: true, force: true })
  } else {
    console.log(`logs kept in ${res.runDir}`)
  }
  if (flags.expectViolation) {
    console.log(res.ok ? 'negative control NOT caught: the checker saw no violation' : 'negative control caught, as expected')
    return res.ok ? 1 : 0
  }
  return res.ok ? (inconclusive ? 3 : 0) : 1
}

function newestSource(dir) {
  let newest = 0
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name)
    if (ent.isDirectory()) newest = Math.max(newest, newestSource(p))
    else if (ent.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs)
  }
  return newest
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(err?.stack ?? err)
      process.exit(2)
    },
  )
}
