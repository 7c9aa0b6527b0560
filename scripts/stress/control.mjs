#!/usr/bin/env node
// node scripts/stress/control.mjs NAME [--seed X] [--procs N] [--seconds S] [--attempts A]
//                                [--engine intact] [--json]
//
// A negative control: the chaos harness against a deliberately broken engine (FileStore's
// test-only `faults`), which the checker must catch. Free-running races hit a fault's window only
// by luck (a loaded machine runs fewer of them), so a control does not rest on luck:
//
//   - It forces the interleaving the fault gets wrong, with a rally (worker.mjs): `limit + 1`
//     workers (or, for a weighted rally, weights summing to `limit + 1`) hold at once, each having
//     logged its grant - possible only for a broken engine
//     (noGate: the rally meets inside the claim, where a gate admits one process at a time).
//     Kills, limit changes and lock-root deletions are off in control runs, so nothing can end a
//     rally member's logged hold early: every met rally is an over-admission the checker must see.
//     (Traps and holder pauses are off too: they mostly broke rallies up.)
//   - It judges only a run where the fault had its chance. Verdicts:
//       caught        the checker reported the expected violation;
//       missed        a rally met (limit + 1 holders for certain) and the checker saw nothing:
//                     the checker is blind to this fault;
//       inconclusive  no rally met in any attempt: the broken engine never got its chance. Each
//                     such attempt is repeated with a new seed, at most `attempts` times.
//
// With `--engine intact` the same control runs against the real engine: no rally can meet and no
// violation exists, so the verdict must not be "caught" (the control does not pass vacuously).
// Exit 0 only for "caught" (with --engine intact: only for not "caught"); 2 on a usage error.
import * as fs from 'node:fs'
import { pathToFileURL } from 'node:url'
import { DEFAULT_INTERNAL, DEFAULT_WEIGHTS, runStress } from './driver.mjs'
import { deriveSeed } from './prng.mjs'
import { formatSummary } from './run.mjs'

/** The negative controls CI runs: the fault, the limit, the rally that forces its window. */
export const NEGATIVE_CONTROLS = {
  noGate: { fault: 'noGate', limit: 1, rally: { at: 'afterScan', size: 2 } },
  reclaimOnSuspicion: { fault: 'reclaimOnSuspicion', limit: 1, rally: { at: 'holding', size: 2, opener: 'hidden' } },
  overAdmit: { fault: 'overAdmit=1', limit: 2, rally: { at: 'holding', size: 3 } },
  // An engine that counts holders, not weights (a harness fault: each claim is made with weight 1
  // while the worker logs the weight it asked for; see worker.mjs). Rally members ask for the whole
  // limit (an exclusive hold) and meet when their weights reach limit + 1: two exclusive holders
  // at once, never more holders than the limit, so only the checker's weight sum can see it.
  weightBlind: { fault: 'weightBlind', limit: 2, rally: { at: 'holding', size: 2, memberWeight: 2, weightSum: 3 } },
  // An engine without a queue (a harness fault: every claim barges while the worker logs fair:
  // true). No rally: the window is forced by pausing waiters that hold a place (stopWaiter) - a
  // paused waiter never gets a slot before it resumes, so a barging engine hands the slots behind
  // its back to later arrivals, and a fair one hands them to nobody. Caught or inconclusive: an
  // overtake is the only evidence the window was used, so this control cannot say "missed".
  unfair: { fault: 'unfair', limit: 1, rally: null, fairShare: 1, expect: 'fairness_overtake', weights: { stopWaiter: 12, stopRandom: 0 } },
  // The PostgreSQL store with a claim function that grants while active <= limit (ClaimFault
  // 'overAdmit'). Rally members block their event loop while they wait, so the wait stays well
  // inside the TTL (a member must not lose its hold by not renewing).
  pgOverAdmit: { store: 'postgres', ttlMs: 3000, rallyWaitMs: 1000, fault: 'overAdmit', limit: 2, rally: { at: 'holding', size: 3 } },
  // The session witness testing the wrong advisory lock (ClaimFault 'wrongLockKey'): every live
  // holder looks gone, and a claim takes its slot while it still holds.
  pgWrongLockKey: { store: 'postgres', ttlMs: 3000, rallyWaitMs: 1000, fault: 'wrongLockKey', limit: 1, rally: { at: 'holding', size: 2 } },
}

/** The violation a control of the bound must produce: a met rally is exactly this. */
export const EXPECTED_KIND = 'over_admission'

/**
 * Chaos that cannot cut a rally member's logged hold short or size a rally wrongly (no kills, no
 * limit changes, no lock-root deletions), and that does not keep rallies from meeting: a trap
 * kills the very claim that just met inside the gate's window, and pausing holders pauses rally
 * members. Random pauses stay.
 */
export const CONTROL_WEIGHTS = { ...DEFAULT_WEIGHTS, killRandom: 0, killHolder: 0, trap: 0, stopHolder: 0, stopWaiter: 0, limit: 0, rmroot: 0, restart: 0 }

/**
 * On a networked store a rally member paused past its TTL rightly loses its hold (and its marker
 * stays while it is stopped): then a met rally would prove nothing. No pauses there.
 */
export const NETWORKED_CONTROL_WEIGHTS = { ...CONTROL_WEIGHTS, stopRandom: 0 }

export function controlCommand(name, seed, o) {
  const parts = ['node scripts/stress/control.mjs', name, `--seed ${seed}`, `--procs ${o.procs}`, `--seconds ${o.seconds}`, '--attempts 1']
  if (o.engine === 'intact') parts.push('--engine intact')
  return parts.join(' ')
}

/**
 * Runs a negative control: attempts until a verdict (see above). Options: seed, procs, seconds,
 * attempts, engine ('broken' | 'intact'), rallyWaitMs, log, onAttempt (called with each attempt's
 * result), check (the checker, for tests of the control itself), internal (another build's
 * dist/internal.js). The logs of every attempt are
 * kept when the control failed, and removed otherwise.
 */
export async function runNegativeControl(name, options = {}) {
  const def = NEGATIVE_CONTROLS[name]
  if (!def) throw new Error(`unknown negative control ${name} (known: ${Object.keys(NEGATIVE_CONTROLS).join(', ')})`)
  const o = { seed: 1, procs: 4, seconds: 6, attempts: 3, engine: 'broken', rallyWaitMs: 2000, log: () => {}, onAttempt: () => {}, ...options }
  const attempts = []
  let verdict = 'inconclusive'
  for (let i = 0; i < o.attempts; i++) {
    const seed = i === 0 ? o.seed : deriveSeed(o.seed, `control-attempt-${i}`)
    const res = await runStress({
      procs: o.procs,
      seconds: o.seconds,
      limit: def.limit,
      keys: 1,
      seed,
      fault: o.engine === 'intact' ? null : def.fault,
      weights: { ...(def.store === 'postgres' ? NETWORKED_CONTROL_WEIGHTS : CONTROL_WEIGHTS), ...def.weights },
      // Controls of the bound barge (fair: false), so a queue neither slows their rallies nor adds
      // verdicts of another kind.
      fairShare: def.fairShare ?? 0,
      rally: def.rally,
      rallyWaitMs: def.rallyWaitMs ?? o.rallyWaitMs,
      ...(def.store ? { store: def.store, ttlMs: def.ttlMs } : {}),
      log: o.log,
      ...(o.internal ? { internal: o.internal } : {}),
      ...(o.check ? { check: o.check } : {}),
    })
    const caught = (res.summary.violationCounts[def.expect ?? EXPECTED_KIND] ?? 0) > 0
    const rallies = res.summary.rallies
    const attempt = { seed, command: controlCommand(name, seed, o), caught, rallies, violationCounts: res.summary.violationCounts, runDir: res.runDir, result: res }
    attempts.push(attempt)
    o.onAttempt(attempt)
    if (caught) verdict = 'caught'
    else if (rallies.met > 0) verdict = 'missed'
    if (verdict !== 'inconclusive') break
  }
  // Logs are kept only when the control failed: a broken engine not caught, or an intact one "caught".
  const asExpected = o.engine === 'intact' ? verdict !== 'caught' : verdict === 'caught'
  for (const a of attempts) {
    if (asExpected) fs.rmSync(a.runDir, { recursive: true, force: true })
    else a.kept = true
  }
  return { name, engine: o.engine, verdict, attempts }
}

/** One line per attempt, then the verdict. */
export function formatControl(out) {
  const lines = []
  for (const [i, a] of out.attempts.entries()) {
    const vc = Object.entries(a.violationCounts)
    lines.push(
      `  attempt ${i + 1}, seed ${a.seed}: rallies ${a.rallies.opened} opened, ${a.rallies.scanMet} met inside a claim, ${a.rallies.met} met holding; ${
        vc.length === 0 ? 'no violation' : vc.map(([k, n]) => `${k}=${n}`).join(', ')
      }`,
    )
    lines.push(`    reproduce: ${a.command}`)
    if (a.kept) lines.push(`    logs kept in ${a.runDir}`)
  }
  const kind = NEGATIVE_CONTROLS[out.name]?.expect ?? EXPECTED_KIND
  const what = {
    caught: `negative control caught (${kind})`,
    missed: `NEGATIVE CONTROL MISSED: limit+1 holders rallied and the checker saw no ${kind}`,
    inconclusive: `negative control inconclusive: ${kind === EXPECTED_KIND ? 'no rally met' : 'no overtake seen'} in ${out.attempts.length} attempt(s)${out.engine === 'intact' ? ' (as it must with the intact engine)' : ''}`,
  }
  lines.push(`  ${what[out.verdict]}`)
  return lines.join('\n')
}

const USAGE = 'usage: node scripts/stress/control.mjs NAME [--seed X] [--procs N] [--seconds S] [--attempts A] [--engine intact] [--json]'

function parseArgs(argv) {
  const o = {}
  let name = null
  let json = false
  const ints = { '--seed': 'seed', '--procs': 'procs', '--seconds': 'seconds', '--attempts': 'attempts' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a in ints) {
      const v = Number(argv[++i])
      const min = a === '--seed' ? 0 : 1
      if (!Number.isSafeInteger(v) || v < min || (a === '--seed' && v > 0xffffffff)) throw new Error(`${a} needs an integer >= ${min}`)
      o[ints[a]] = v
    } else if (a === '--engine') {
      const v = argv[++i]
      if (v !== 'intact' && v !== 'broken') throw new Error('--engine needs intact or broken')
      o.engine = v
    } else if (a === '--json') json = true
    else if (!a.startsWith('-') && name === null) name = a
    else throw new Error(`unknown argument ${a}`)
  }
  if (name === null || !(name in NEGATIVE_CONTROLS)) throw new Error(`name one of: ${Object.keys(NEGATIVE_CONTROLS).join(', ')}`)
  return { name, o, json }
}

async function main() {
  let parsed
  try {
    parsed = parseArgs(process.argv.slice(2))
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`)
    return 2
  }
  if (!fs.existsSync(DEFAULT_INTERNAL)) {
    console.error(`${DEFAULT_INTERNAL} is missing: run \`npm run build\` first`)
    return 2
  }
  const { name, o, json } = parsed
  const out = await runNegativeControl(name, {
    ...o,
    log: (m) => console.error(m),
    onAttempt: (a) => {
      if (!json) console.log(formatSummary(a.result))
    },
  })
  if (json) {
    const attempts = out.attempts.map(({ result, ...a }) => ({ ...a, summary: result.summary }))
    console.log(JSON.stringify({ name: out.name, engine: out.engine, verdict: out.verdict, attempts }, null, 2))
  }
  console.log(formatControl(out))
  const caught = out.verdict === 'caught'
  return (out.engine === 'intact' ? !caught : caught) ? 0 : 1
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
