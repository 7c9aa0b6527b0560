// Child process for bench/lease-scale.mjs (the file store at scale): one role per invocation,
// `node lease-scale-worker.mjs ROLE SPEC_JSON`, events as JSON lines on stdout.
// Times are milliseconds of process.hrtime (CLOCK_MONOTONIC), comparable across processes.
import { createInterface } from 'node:readline'
import { setTimeout as delay } from 'node:timers/promises'
import { LeaseError, acquireLease } from '../dist/index.js'
import { acquireWith, normalizeOptions, storeFor } from '../dist/internal.js'

const [role, specJson] = process.argv.slice(2)
const spec = JSON.parse(specJson)
const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
/** The parent's next command; EOF means the parent is gone, and so is the benchmark. */
async function command() {
  const { done, value } = await lines.next()
  if (done) process.exit(0)
  return value
}

// Only the options the running engine knows are passed: `fair` and `weight` when the spec sets them.
const leaseOptions = () => ({
  key: spec.key,
  limit: spec.limit,
  lockRoot: spec.root,
  waitMs: spec.waitMs ?? 600_000,
  ...(spec.fair === undefined ? {} : { fair: spec.fair }),
  ...(spec.weight === undefined ? {} : { weight: spec.weight }),
})

emit({ ev: 'ready', pid: process.pid })

if (role === 'relay') {
  // Hand-off: hold until told "release", then wait to be told "queue" before waiting again, so
  // that the slot passes to a process that was already waiting.
  for (;;) {
    emit({ ev: 'want', t: nowMs() })
    const lease = await acquireLease(leaseOptions())
    emit({ ev: 'grant', t: nowMs() })
    await command()
    emit({ ev: 'release', t: nowMs() })
    await lease.release()
    await command()
  }
} else if (role === 'hold-many') {
  // Holds spec.count slots until the parent ends (EOF on stdin, or a kill).
  const leases = []
  for (let i = 0; i < spec.count; i++) leases.push(await acquireLease(leaseOptions()))
  emit({ ev: 'held', n: leases.length })
  await command()
  for (const l of leases) await l.release()
  emit({ ev: 'released' })
  await command()
} else if (role === 'demand') {
  // spec.count demanders in this process, started together on "go": each acquires, holds
  // spec.holdMs and releases once. Reports [grant, release-called] per demander, and the lease
  // errors met on the way by code (a release that meets `key_frozen` keeps its hold and is retried).
  await command()
  const intervals = []
  const errors = {}
  const count = (err) => {
    if (!(err instanceof LeaseError)) throw err
    errors[err.code] = (errors[err.code] ?? 0) + 1
  }
  await Promise.all(
    Array.from({ length: spec.count }, async () => {
      let lease
      try {
        lease = await acquireLease(leaseOptions())
      } catch (err) {
        count(err)
        return
      }
      const g = nowMs()
      await delay(spec.holdMs)
      intervals.push([g, nowMs()])
      for (;;) {
        try {
          await lease.release()
          break
        } catch (err) {
          if (err?.code !== 'key_frozen') throw err
          count(err)
        }
      }
    }),
  )
  emit({ ev: 'done', intervals, errors })
  await command()
} else if (role === 'fair-loop') {
  // spec.rounds times, on "go": acquire (arrival = the call; queued = its first busy answer, the
  // moment it took its place in the queue, or null when it never waited), hold spec.holdMs,
  // release, again.
  await command()
  const acq = []
  const opts = normalizeOptions(leaseOptions())
  const store = storeFor(spec.root)
  for (let i = 0; i < spec.rounds; i++) {
    const a = nowMs()
    let q = null
    const lease = await acquireWith(store, opts, 'wait', { onBusy: () => { q ??= nowMs() } })
    const g = nowMs()
    await delay(spec.holdMs)
    const r = nowMs()
    await lease.release()
    acq.push([a, g, r, q])
  }
  emit({ ev: 'done', acq })
  await command()
} else if (role === 'trace-one') {
  // One uncontended acquire + release between two markers, for strace; warmed up first so that
  // the marked span holds the steady-state system calls only.
  for (let i = 0; i < 50; i++) await (await acquireLease(leaseOptions())).release()
  process.stderr.write('BENCH-MARK-START\n')
  const lease = await acquireLease(leaseOptions())
  await lease.release()
  process.stderr.write('BENCH-MARK-END\n')
  process.exit(0)
} else {
  throw new Error(`unknown role ${role}`)
}
