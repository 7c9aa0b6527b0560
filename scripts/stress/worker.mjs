// One chaos worker: loops acquire → hold a random short time → release on a few keys, logging
// every moment that matters to its own append-only log with fs.writeSync, so a SIGKILL loses
// nothing the checker needs:
//   acq   {t0, key, limit, mode, waitMs}   t0 is taken BEFORE the limit is read
//   grant {t, key, slot, fence, waitedMs}  written after acquire returns
//   rel   {t, key}                         written BEFORE release is called
//   reld  {t, key, ok}                     written after release returns
//   busy  {t, key, mode, waitedMs}         lease_busy (waitMs elapsed) or try-mode null
//   err   {t, phase, key, code, message}   anything else: the checker counts it as a violation
//   rally {t, seq, phase, n, met}          a forced interleaving (below): who joined, whether it met
// On a networked store (cfg.store 'postgres') a hold can end without its holder - its deadline
// passed while it was stopped, its session died with a server restart - so a holder also logs
// what it knows of its hold:
//   held  {t}                              lease.held() was true just after t (t is taken first), so
//                                          the hold's local deadline had not passed at t
//   lost  {t, key, reason}                 lease.signal fired (expired, connection_lost, lost)
//   rel   {t, key, held}                   as above, with lease.held() checked just after t
// While holding it checks held() every few ms, and stops holding early when it is false.
// Time is process.hrtime.bigint() (CLOCK_MONOTONIC on Linux, shared by all processes) in µs.
//
// Usage (spawned by driver.mjs): node worker.mjs '<json config>'
import * as fs from 'node:fs'
import { dirname, join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { deriveSeed, rng } from './prng.mjs'

const cfg = JSON.parse(process.argv[2])
const { FileStore, acquireWith, normalizeOptions, selfHolder } = await import(pathToFileURL(cfg.internal).href)
const networked = cfg.store === 'postgres'

const now = () => Number(process.hrtime.bigint() / 1000n)
const r = rng(deriveSeed(cfg.seed, `worker-${cfg.id}`))
const logFd = fs.openSync(join(cfg.runDir, `w-${cfg.id}.jsonl`), 'a', 0o600)
const emit = (ev) => fs.writeSync(logFd, JSON.stringify(ev) + '\n')
const controlPath = join(cfg.runDir, 'control.json')

function readControl() {
  for (let i = 0; ; i++) {
    try {
      return JSON.parse(fs.readFileSync(controlPath, 'utf8'))
    } catch (err) {
      // The driver replaces the file by rename, so a torn read is impossible; ENOENT is not.
      if (i > 100) throw err
    }
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

// The trap: when the driver arms it for this worker, the next claim announces itself on stdout
// from inside the transition (gate held, record written to its temporary file, not yet
// published) and stalls there, so the driver can SIGKILL a worker that is provably mid-claim.
let trapArmed = false
let trapSeq = -1
// The rally: a forced interleaving for negative controls. The driver opens a rally (control file
// `rally`: seq, at, size, opener) and every worker takes part in it once. A member that holds
// stays in the rally until `size` members hold at once (or the rally closes, or rallyWaitMs
// passes). A member's marker exists only while the member is in its wait - written after its
// grant was logged, removed before it goes on towards release - so a member that sees `size`
// markers saw `size` leases held at that moment, each with its grant logged before and its
// release logged after. `size` is the limit plus one: only a broken engine lets a rally meet.
// With `at: 'afterScan'` the members first meet inside the claim (after the count, before the
// record is written): the window a gate keeps to one process at a time.
let rally = null // the rally this claim takes part in: { seq, at, size, opener }
let rallyJoined = -1 // the last rally seq this worker took part in
let rallyScanMet = false
const rallyDir = (seq) => join(cfg.runDir, `rally-${seq}`)

function rallyEntries(seq) {
  try {
    return fs.readdirSync(rallyDir(seq))
  } catch (err) {
    if (err.code === 'ENOENT') return null
    throw err
  }
}

function touch(seq, name) {
  try {
    fs.writeFileSync(join(rallyDir(seq), name), '')
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
}

/**
 * Takes part in one phase of the open rally and waits, bounded, until `size` members are in it.
 * A hold-phase member leaves (removes its marker) whatever the outcome; a scan-phase member that
 * met keeps its marker, so its partner sees the meeting too.
 */
function rallyMeet(phase) {
  const seq = rally.seq
  const closed = `closed-${phase}`
  const mine = `${phase}-${cfg.id}`
  const before = rallyEntries(seq)
  if (before === null || before.includes(closed)) return false
  touch(seq, mine)
  const deadline = performance.now() + cfg.rallyWaitMs
  for (;;) {
    const names = rallyEntries(seq) ?? []
    const n = names.filter((x) => x.startsWith(`${phase}-`)).length
    const met = n >= rally.size
    if (met || names.includes(closed) || performance.now() >= deadline) {
      emit({ ev: 'rally', t: now(), seq, phase, n, met })
      if (!met || phase === 'hold') fs.rmSync(join(rallyDir(seq), mine), { force: true })
      if (phase === 'hold' || !met) touch(seq, closed)
      return met
    }
    sleepSync(2)
  }
}

const faults = {
  beforePublish() {
    if (!trapArmed) return
    trapArmed = false
    fs.writeSync(1, `trap ${cfg.id} ${trapSeq}\n`)
    sleepSync(cfg.trapStallMs)
  },
  afterScan() {
    if (rally === null || rally.at !== 'afterScan' || rallyJoined === rally.seq) return
    rallyJoined = rally.seq
    rallyScanMet = rallyMeet('scan')
  },
}
if (cfg.fault) {
  const [name, value] = cfg.fault.split('=')
  faults[name] = value === undefined ? true : Number(value)
}
let store
if (networked) {
  const { postgresStore } = await import(pathToFileURL(join(dirname(cfg.internal), 'postgres.js')).href)
  store = postgresStore({ connectionString: cfg.connectionString, schema: cfg.schema, ttlMs: cfg.ttlMs })
} else {
  store = new FileStore({ root: cfg.root, faults })
}

// Some workers record an identity nobody can verify (as if they ran in another pid namespace or
// behind hidepid): only the kernel witness can then tell whether they are alive. The engine must
// keep their slots while they live and reclaim them once they are killed.
const hidden = !networked && cfg.hiddenEvery > 0 && cfg.id % cfg.hiddenEvery === 1
const me = selfHolder()
let busyAnswers = 0
const hooks = {
  holder: hidden ? () => ({ ...me, pidNamespace: 'pid:[4026531836-hidden]' }) : () => me,
  // Counts the times this acquire found the key full, i.e. whether the grant had to wait.
  onBusy: () => {
    busyAnswers++
  },
}

function errorInfo(err) {
  return {
    name: err?.name,
    code: err?.code,
    message: String(err?.message ?? err).slice(0, 500),
    stack: String(err?.stack ?? '').split('\n').slice(0, 8).join('\n'),
  }
}

/**
 * Holds for `ms`, checking lease.held() every few ms and logging each time it was true: the
 * checker's evidence that the hold's local deadline had not passed. Stops early when it is false
 * (the hold is lost: a correct holder stops using the resource).
 */
async function holdWatching(lease, ms) {
  const end = performance.now() + ms
  for (;;) {
    const t = now()
    if (!lease.held()) return
    emit({ ev: 'held', t })
    const left = end - performance.now()
    if (left <= 0) return
    await delay(Math.min(left, 15))
  }
}

function holdMs() {
  const p = r.next()
  if (p < 0.7) return r.range(0, 15)
  if (p < 0.95) return r.range(20, 120)
  return r.range(200, 600)
}

/**
 * Whether this holder joins the rally's hold phase: always after meeting inside the claim; for a
 * rally of holders, an `opener: 'hidden'` rally is opened only by a holder that only the kernel
 * witness vouches for (the one an engine that reclaims on suspicion takes the slot of).
 */
function rallyMayHold() {
  if (rally.at === 'afterScan') return rallyScanMet
  if (rally.opener !== 'hidden' || hidden) return true
  return (rallyEntries(rally.seq) ?? []).some((x) => x.startsWith('hold-'))
}

emit({ ev: 'start', t: now(), pid: process.pid, hidden })
let stopping = false
process.on('SIGTERM', () => {
  stopping = true
})

for (let cycle = 0; ; cycle++) {
  const t0 = now()
  const ctl = readControl()
  if (ctl.stop || stopping) break
  const armed = ctl.traps[cfg.id]
  if (armed !== undefined && armed !== trapSeq) {
    trapSeq = armed
    trapArmed = true
  }
  // A claim joins the open rally unless this worker already took part in it.
  rally = ctl.rally && ctl.rally.seq !== rallyJoined ? ctl.rally : null
  rallyScanMet = false
  const key = r.pick(cfg.keys)
  const limit = ctl.limits[key]
  const mode = r.chance(0.2) ? 'try' : 'wait'
  const waitMs = mode === 'try' ? 0 : r.pick(cfg.waitChoices)
  emit({ ev: 'acq', t0, key, limit, mode, waitMs, cycle })
  let lease
  busyAnswers = 0
  try {
    const where = networked ? { store } : { lockRoot: cfg.root }
    lease = await acquireWith(store, normalizeOptions({ key, limit, ...where, waitMs }), mode, hooks)
  } catch (err) {
    const t = now()
    if (err?.name === 'LeaseError' && err.code === 'lease_busy') {
      emit({ ev: 'busy', t, key, mode, waitedMs: (t - t0) / 1000 })
    } else {
      emit({ ev: 'err', t, phase: 'acquire', key, ...errorInfo(err) })
      // A server restarting refuses connections for a while: do not spin on it.
      await delay(err?.code === 'store_unavailable' ? 100 : 20)
    }
    continue
  }
  if (lease === null) {
    const t = now()
    emit({ ev: 'busy', t, key, mode, waitedMs: (t - t0) / 1000 })
    continue
  }
  const tg = now()
  emit({ ev: 'grant', t: tg, key, slot: lease.slot, fence: lease.fence, waitedMs: (tg - t0) / 1000, waited: busyAnswers > 0 })
  if (rally !== null && rallyMayHold()) {
    rallyJoined = rally.seq
    rallyMeet('hold')
  }
  if (networked) {
    const held = lease
    held.signal.addEventListener('abort', () => emit({ ev: 'lost', t: now(), key, reason: String(held.signal.reason) }), { once: true })
  }
  rally = null
  if (networked) await holdWatching(lease, holdMs())
  else await delay(holdMs())
  if (r.chance(0.05)) {
    // Inspecting while holding exercises the read path under chaos; it must never throw.
    try {
      await store.inspect(key, r.chance(0.5))
    } catch (err) {
      emit({ ev: 'err', t: now(), phase: 'inspect', key, ...errorInfo(err) })
    }
  }
  if (networked) {
    const t = now()
    emit({ ev: 'rel', t, key, held: lease.held() })
  } else {
    emit({ ev: 'rel', t: now(), key })
  }
  try {
    const ok = !networked && r.chance(0.3) ? lease.releaseSync() : await lease.release()
    emit({ ev: 'reld', t: now(), key, ok })
  } catch (err) {
    emit({ ev: 'err', t: now(), phase: 'release', key, ...errorInfo(err) })
  }
  if (r.chance(0.5)) await delay(r.range(0, 10))
}

if (networked) await store.close()
emit({ ev: 'exit', t: now() })
fs.closeSync(logFd)
process.exit(0)
