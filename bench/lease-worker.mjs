// Child process for bench/lease.mjs: one role per invocation, events as JSON lines on stdout.
// Times come from process.hrtime.bigint() (CLOCK_MONOTONIC), comparable across processes.
//
// impl: 'proclease' | 'proper-lockfile' (target: a lock root) or 'postgres' | 'redis-semaphore'
// (target: a JSON spec from lease.mjs naming the server, the key and the timing settings).
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as delay } from 'node:timers/promises'
import lockfile from 'proper-lockfile'
import { acquireLease } from '../dist/index.js'

const [role, impl, root, arg] = process.argv.slice(2)
const now = () => process.hrtime.bigint().toString()
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const networked = impl === 'postgres' || impl === 'redis-semaphore'
// The parent holds our stdin open while it lives: EOF means it is gone, and so is the benchmark.
process.stdin.on('end', () => process.exit(0)).resume()
const spec = networked ? JSON.parse(root) : null

// proper-lockfile at its most aggressive: the minimum stale time it allows (2 s) and a
// polling retry comparable to proclease's backoff ceiling (100 ms).
const PL_STALE = 2000
const plRetries = (ms) => ({ retries: Math.ceil(ms / 50), factor: 1, minTimeout: 50, maxTimeout: 50 })

function plTarget() {
  mkdirSync(root, { recursive: true })
  const file = join(root, 'resource')
  writeFileSync(file, '')
  return file
}

// A skewed process (spec.skew): its wall clock runs spec.skew.wallMs ahead (redis-semaphore
// compares client wall clocks); the PostgreSQL store gets its monotonic clock offset by
// spec.skew.monoMs through the store's clock seam (it compares no wall clocks at all).
if (spec?.skew) {
  const realNow = Date.now
  Date.now = () => realNow() + spec.skew.wallMs
}

let pgStore = null
async function postgres() {
  if (pgStore === null) {
    const { PostgresStore } = await import('../dist/postgres.js')
    const seams = spec.skew ? { now: () => performance.now() + spec.skew.monoMs } : {}
    pgStore = new PostgresStore({ connectionString: spec.connectionString, ttlMs: spec.ttlMs }, seams)
  }
  return pgStore
}

let redis = null
async function redisClient() {
  if (redis === null) {
    const { Redis } = await import('ioredis')
    redis = new Redis({ path: spec.socket, enableOfflineQueue: true, maxRetriesPerRequest: 1 })
  }
  return redis
}

/** Acquires one slot (limit 1) of `key`; resolves to { release, held } or rejects when busy at waitMs. */
async function acquire(waitMs, key = spec?.key) {
  if (impl === 'proclease') {
    const lease = await acquireLease({ key: 'bench', limit: 1, lockRoot: root, waitMs })
    return { release: () => lease.release(), held: () => lease.held() }
  }
  if (impl === 'postgres') {
    const lease = await acquireLease({ key, limit: 1, store: await postgres(), waitMs })
    return { release: () => lease.release(), held: () => lease.held() }
  }
  if (impl === 'redis-semaphore') {
    const { Semaphore } = await import('redis-semaphore')
    let lost = false
    const sem = new Semaphore(await redisClient(), key, 1, {
      lockTimeout: spec.lockTimeout,
      refreshInterval: spec.refreshInterval,
      retryInterval: spec.retryInterval,
      acquireTimeout: Math.max(1, waitMs),
      // Its default throws from a timer; here a lost lock is an event the parent counts.
      onLockLost: () => {
        lost = true
        emit({ ev: 'lost', key, t: now() })
      },
    })
    await sem.acquire()
    return { release: () => sem.release(), held: () => sem.isAcquired && !lost }
  }
  const release = await lockfile.lock(plTarget(), { stale: PL_STALE, retries: plRetries(waitMs), realpath: false })
  return { release: () => release(), held: () => true }
}

if (role === 'pingpong') {
  // Hold until the parent says "release"; queue up again on the next line.
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  for (;;) {
    emit({ ev: 'want', t: now() })
    const { release } = await acquire(600_000)
    emit({ ev: 'grant', t: now() })
    const { done } = await lines.next()
    if (done) process.exit(0)
    emit({ ev: 'release', t: now() })
    await release()
    // Queue again only when told: the slot must pass to a process that was already waiting.
    if ((await lines.next()).done) process.exit(0)
  }
} else if (role === 'handoff') {
  const rounds = Number(arg)
  for (let i = 0; i < rounds; i++) {
    emit({ ev: 'want', t: now() })
    const { release } = await acquire(60_000)
    emit({ ev: 'grant', t: now() })
    await delay(2)
    emit({ ev: 'release', t: now() })
    await release()
    // Step back after releasing, longer than either library's polling interval, so the slot
    // passes to a process that was already waiting: that is the hand-off being measured.
    await delay(120)
  }
  emit({ ev: 'done' })
} else if (role === 'holder') {
  await acquire(60_000)
  emit({ ev: 'held' })
  setInterval(() => {}, 1 << 30)
} else if (role === 'waiter') {
  emit({ ev: 'waiting' })
  await acquire(60_000)
  emit({ ev: 'grant', t: now() })
  process.exit(0)
} else if (role === 'idle-waiter') {
  const waitMs = Number(arg)
  // Warm up (module loading, JIT, lock root checks, connections) so only the waiting is measured.
  await acquire(0).then(() => emit({ ev: 'unexpected-grant' }), busyOnly)
  const before = process.cpuUsage()
  emit({ ev: 'waiting' })
  try {
    await acquire(waitMs)
    emit({ ev: 'unexpected-grant' })
  } catch (err) {
    busyOnly(err)
    const d = process.cpuUsage(before)
    emit({ ev: 'cpu', us: d.user + d.system })
  }
  process.exit(0)
} else if (role === 'skew-holder') {
  // Holds `arg` keys (spec.key-0, spec.key-1, ...) and answers "check I" with whether it still
  // believes it holds key I: a holder that believes it holds acts as the holder.
  const n = Number(arg)
  const holds = []
  for (let i = 0; i < n; i++) holds.push(await acquire(60_000, `${spec.key}-${i}`))
  emit({ ev: 'held' })
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, i] = line.split(' ')
    if (cmd === 'check') emit({ ev: 'state', i: Number(i), held: holds[Number(i)].held() })
  }
  process.exit(0)
} else if (role === 'skew-contender') {
  // Under a skewed clock, wants every key the skew-holder holds, all at once, for spec.waitMs
  // each. A grant is kept (never released) so that the parent can ask the holder about it.
  const n = Number(arg)
  const kept = []
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      try {
        kept.push(await acquire(spec.waitMs, `${spec.key}-${i}`))
        emit({ ev: 'grant', i, t: now() })
      } catch (err) {
        busyOnly(err)
        emit({ ev: 'busy', i })
      }
    }),
  )
  emit({ ev: 'done' })
  for await (const _ of createInterface({ input: process.stdin }));
  process.exit(0)
} else {
  throw new Error(`unknown role ${role}`)
}

/** Lets a "busy at the deadline" answer through and rethrows anything else (an outage is no figure). */
function busyOnly(err) {
  const busy =
    (err instanceof Error && /** @type {{ code?: unknown }} */ (err).code === 'lease_busy') ||
    (impl === 'redis-semaphore' && err instanceof Error && err.constructor.name === 'TimeoutError') ||
    (impl === 'proper-lockfile' && err instanceof Error && /** @type {{ code?: unknown }} */ (err).code === 'ELOCKED')
  if (!busy) throw err
}
