// Child process for bench/lease.mjs: one role per invocation, events as JSON lines on stdout.
// Times come from process.hrtime.bigint() (CLOCK_MONOTONIC), comparable across processes.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as delay } from 'node:timers/promises'
import lockfile from 'proper-lockfile'
import { acquireLease } from '../dist/index.js'

const [role, impl, root, arg] = process.argv.slice(2)
const now = () => process.hrtime.bigint().toString()
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n')

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

async function acquire(waitMs) {
  if (impl === 'proclease') {
    const lease = await acquireLease({ key: 'bench', limit: 1, lockRoot: root, waitMs })
    return () => lease.release()
  }
  const release = await lockfile.lock(plTarget(), { stale: PL_STALE, retries: plRetries(waitMs), realpath: false })
  return () => release()
}

if (role === 'pingpong') {
  // Hold until the parent says "release"; queue up again on the next line.
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  for (;;) {
    emit({ ev: 'want', t: now() })
    const release = await acquire(600_000)
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
    const release = await acquire(60_000)
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
  // Warm up (module loading, JIT, lock root checks) so only the waiting itself is measured.
  await acquire(0).then(() => emit({ ev: 'unexpected-grant' }), () => {})
  const before = process.cpuUsage()
  emit({ ev: 'waiting' })
  try {
    await acquire(waitMs)
    emit({ ev: 'unexpected-grant' })
  } catch {
    const d = process.cpuUsage(before)
    emit({ ev: 'cpu', us: d.user + d.system })
  }
  process.exit(0)
} else {
  throw new Error(`unknown role ${role}`)
}
