// One chaos worker: loops acquire → hold a random short time → release on a few keys, logging
// every moment that matters to its own append-only log with fs.writeSync, so a SIGKILL loses
// nothing the checker needs:
//   acq   {t0, key, limit, mode, waitMs}   t0 is taken BEFORE the limit is read
//   grant {t, key, slot, fence, waitedMs}  written after acquire returns
//   rel   {t, key}                         written BEFORE release is called
//   reld  {t, key, ok}                     written after release returns
//   busy  {t, key, mode, waitedMs}         lease_busy (waitMs elapsed) or try-mode null
//   err   {t, phase, key, code, message}   anything else: the checker counts it as a violation
// Time is process.hrtime.bigint() (CLOCK_MONOTONIC on Linux, shared by all processes) in µs.
//
// Usage (spawned by driver.mjs): node worker.mjs '<json config>'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { deriveSeed, rng } from './prng.mjs'

const cfg = JSON.parse(process.argv[2])
const { FileStore, acquireWith, normalizeOptions, selfHolder } = await import(pathToFileURL(cfg.internal).href)

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
const faults = {
  beforePublish() {
    if (!trapArmed) return
    trapArmed = false
    fs.writeSync(1, `trap ${cfg.id} ${trapSeq}\n`)
    sleepSync(cfg.trapStallMs)
  },
}
if (cfg.fault) {
  const [name, value] = cfg.fault.split('=')
  faults[name] = value === undefined ? true : Number(value)
}
const store = new FileStore({ root: cfg.root, faults })

// Some workers record an identity nobody can verify (as if they ran in another pid namespace or
// behind hidepid): only the kernel witness can then tell whether they are alive. The engine must
// keep their slots while they live and reclaim them once they are killed.
const hidden = cfg.hiddenEvery > 0 && cfg.id % cfg.hiddenEvery === 1
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

function holdMs() {
  const p = r.next()
  if (p < 0.7) return r.range(0, 15)
  if (p < 0.95) return r.range(20, 120)
  return r.range(200, 600)
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
  const key = r.pick(cfg.keys)
  const limit = ctl.limits[key]
  const mode = r.chance(0.2) ? 'try' : 'wait'
  const waitMs = mode === 'try' ? 0 : r.pick(cfg.waitChoices)
  emit({ ev: 'acq', t0, key, limit, mode, waitMs, cycle })
  let lease
  busyAnswers = 0
  try {
    lease = await acquireWith(store, normalizeOptions({ key, limit, lockRoot: cfg.root, waitMs }), mode, hooks)
  } catch (err) {
    const t = now()
    if (err?.name === 'LeaseError' && err.code === 'lease_busy') {
      emit({ ev: 'busy', t, key, mode, waitedMs: (t - t0) / 1000 })
    } else {
      emit({ ev: 'err', t, phase: 'acquire', key, ...errorInfo(err) })
      await delay(20)
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
  await delay(holdMs())
  if (r.chance(0.05)) {
    // Inspecting while holding exercises the read path under chaos; it must never throw.
    try {
      await store.inspect(key, r.chance(0.5))
    } catch (err) {
      emit({ ev: 'err', t: now(), phase: 'inspect', key, ...errorInfo(err) })
    }
  }
  emit({ ev: 'rel', t: now(), key })
  try {
    const ok = r.chance(0.3) ? lease.releaseSync() : await lease.release()
    emit({ ev: 'reld', t: now(), key, ok })
  } catch (err) {
    emit({ ev: 'err', t: now(), phase: 'release', key, ...errorInfo(err) })
  }
  if (r.chance(0.5)) await delay(r.range(0, 10))
}

emit({ ev: 'exit', t: now() })
fs.closeSync(logFd)
process.exit(0)
