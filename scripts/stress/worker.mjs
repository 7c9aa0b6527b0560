// One chaos worker: loops acquire → hold a random short time → release on a few keys, logging
// every moment that matters to its own append-only log with fs.writeSync, so a SIGKILL loses
// nothing the checker needs:
//   acq   {t0, key, limit, mode, waitMs, weight, fair}
//                                          t0 is taken BEFORE the limit is read; weight is the
//                                          share asked for (1..limit, mostly 1), fair the option
//   queued {t, c0, key, place}             the acquire's first busy answer in wait mode: the
//                                          claim attempt that gave it began at c0 and returned at
//                                          t, so a fair waiter's queue place was taken in [c0, t]
//                                          (place: whether the answer carried one)
//   grant {t, key, slot, fence, weight, leaseWeight, engineWeight?, c0, c1, waitedMs}
//                                          written after acquire returns; [c0, c1] is the claim
//                                          attempt that granted (the grant happened inside it);
//                                          leaseWeight is lease.weight, engineWeight the weight
//                                          the engine was asked for when a harness fault changed it
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
// Claim attempts are timed by a wrapper around the store (the engine calls store.claim once per
// attempt), not by the engine's hooks: the checker needs when the attempt began, not only when the
// engine reported it.
//
// Harness faults (negative controls of the checker that need no engine seam; cfg.fault):
//   weightBlind   every claim is made with weight 1 while the log keeps the weight asked for: an
//                 engine that counts holders, not weights. Only the checker's weight sum sees it.
//   unfair        every claim is made with fair: false while the log keeps the fair asked for: an
//                 engine without a queue. Only the checker's fairness rule sees it.
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
// record is written): the window a gate keeps to one process at a time. A weighted rally
// (`memberWeight`, `weightSum`) has its members ask for memberWeight and meets when the weights of
// the members holding at once reach weightSum (the limit plus one): only an engine that
// misjudges weights lets it meet.
let rally = null // the rally this claim takes part in: { seq, at, size, opener }
let rallyJoined = -1 // the last rally seq this worker took part in
let rallyScanMet = false
let rallyWeight = 1
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
  const mine = `${phase}-${cfg.id}-w${rallyWeight}`
  const before = rallyEntries(seq)
  if (before === null || before.includes(closed)) return false
  touch(seq, mine)
  const deadline = performance.now() + cfg.rallyWaitMs
  for (;;) {
    const names = rallyEntries(seq) ?? []
    const members = names.filter((x) => x.startsWith(`${phase}-`))
    const n = members.length
    // A weighted rally meets on the members' weights (each marker names its member's weight).
    const sum = members.reduce((acc, x) => acc + Number(/-w(\d+)$/.exec(x)?.[1] ?? 1), 0)
    const met = rally.weightSum === undefined ? n >= rally.size : sum >= rally.weightSum
    if (met || names.includes(closed) || performance.now() >= deadline) {
      emit({ ev: 'rally', t: now(), seq, phase, n, sum, met })
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
const HARNESS_FAULTS = new Set(['weightBlind', 'unfair'])
const harnessFaults = {}
if (cfg.fault) {
  const [name, value] = cfg.fault.split('=')
  const into = HARNESS_FAULTS.has(name) ? harnessFaults : faults
  into[name] = value === undefined ? true : Number(value)
}
let baseStore
if (networked) {
  const { postgresStore } = await import(pathToFileURL(join(dirname(cfg.internal), 'postgres.js')).href)
  baseStore = postgresStore({ connectionString: cfg.connectionString, schema: cfg.schema, ttlMs: cfg.ttlMs })
} else {
  baseStore = new FileStore({ root: cfg.root, faults })
}

// The current acquire's claim attempts: the first busy one (the queue place) and the latest.
let claims = { queued: null, last: null }
/**
 * The store as the engine sees it: every claim attempt is timed, and the first busy answer of a
 * waiting acquire is logged at once (written before the engine goes on, so a kill loses nothing).
 */
const store = new Proxy(baseStore, {
  get(target, prop) {
    if (prop === 'claim') {
      return async (req) => {
        const c0 = now()
        const attempt = await target.claim({ ...req, ...(harnessFaults.weightBlind ? { weight: 1 } : {}), ...(harnessFaults.unfair ? { fair: false } : {}) })
        const c1 = now()
        claims.last = [c0, c1]
        if (attempt.kind === 'busy' && req.mode === 'wait' && claims.queued === null) {
          claims.queued = [c0, c1]
          emit({ ev: 'queued', t: c1, c0, key: req.key, place: attempt.place !== undefined })
        }
        return attempt
      }
    }
    const v = Reflect.get(target, prop, target)
    return typeof v === 'function' ? v.bind(target) : v
  },
})

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

/** A weight in 1..max, mostly 1 (most holds are light; a few are heavy, up to exclusive). */
function pickWeight(max) {
  const light = r.chance(0.6)
  const any = r.int(1, max)
  return light ? 1 : any
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
  // Drawn every cycle whatever the rally, so a seed's sequence of draws does not shift.
  const drawnWeight = pickWeight(Math.min(limit, cfg.maxWeight ?? limit))
  const fair = r.chance(cfg.fairShare ?? 0)
  const weight = rally?.memberWeight !== undefined ? Math.min(rally.memberWeight, limit) : drawnWeight
  rallyWeight = weight
  emit({ ev: 'acq', t0, key, limit, mode, waitMs, weight, fair, cycle })
  let lease
  busyAnswers = 0
  claims = { queued: null, last: null }
  try {
    const where = networked ? { store } : { lockRoot: cfg.root }
    lease = await acquireWith(store, normalizeOptions({ key, limit, weight, fair, ...where, waitMs }), mode, hooks)
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
  const [c0, c1] = claims.last ?? [t0, tg]
  // engineWeight: what the engine was asked for, when a harness fault made it differ from weight.
  const asked = harnessFaults.weightBlind ? { engineWeight: 1 } : {}
  emit({ ev: 'grant', t: tg, key, slot: lease.slot, fence: lease.fence, weight, leaseWeight: lease.weight, ...asked, c0, c1, waitedMs: (tg - t0) / 1000, waited: busyAnswers > 0 })
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
