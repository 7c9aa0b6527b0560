// Lease benchmark, side by side in one run on one machine:
//   --store file (default): proclease's file store against proper-lockfile;
//   --store postgres: the PostgreSQL store against redis-semaphore on a local redis-server
//     (bench/lease-postgres.mjs; starts a throwaway PostgreSQL cluster and redis-server itself).
// Usage: npm run bench:lease [-- --store postgres] [-- --seconds 2 --rounds 20 --recoveries 5]
//   file mode also (bench/lease-scale.mjs): --quick (smaller sizes, for CI), --only LIST (comma
//   separated: compare,handoff,holders,peak,fairness,floor; default all), --skip-strace (no system
//   call counts), --fair true|false (the hand-off rows' option; default: the engine's), --json FILE
//   postgres mode also: --ttl-ms 15000 --redis-lock-timeout 1500 --skew-keys 20 --skew-ttl-ms 2000
//   --skip-durable (no fsync pass) --json FILE (raw results)
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import lockfile from 'proper-lockfile'
import { acquireLease } from '../dist/index.js'
import { fmt, handoff, idleCpu, median, printTable, sleep, start } from './lease-common.mjs'
import { haveStrace, runScale } from './lease-scale.mjs'

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'file' },
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '20' },
    recoveries: { type: 'string', default: '5' },
    // --store postgres only (see bench/lease-postgres.mjs).
    'ttl-ms': { type: 'string', default: '15000' },
    'redis-lock-timeout': { type: 'string', default: '1500' },
    'skew-keys': { type: 'string', default: '20' },
    'skew-ttl-ms': { type: 'string', default: '2000' },
    'skip-durable': { type: 'boolean', default: false },
    json: { type: 'string' },
    // --store file only (see bench/lease-scale.mjs).
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'skip-strace': { type: 'boolean', default: false },
    fair: { type: 'string' },

  },
})
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const RECOVERIES = Number(values.recoveries)

if (values.store === 'postgres') {
  const { runPostgres } = await import('./lease-postgres.mjs')
  await runPostgres({
    seconds: SECONDS,
    rounds: ROUNDS,
    recoveries: RECOVERIES,
    ttlMs: Number(values['ttl-ms']),
    redisLockTimeout: Number(values['redis-lock-timeout']),
    skewKeys: Number(values['skew-keys']),
    skewTtlMs: Number(values['skew-ttl-ms']),
    durable: !values['skip-durable'],
    json: values.json,
  }).catch((err) => {
    // Nothing to debug in a missing server: say what to install, without a stack trace.
    if (err?.code !== 'ENOREDIS') throw err
    process.stderr.write(`bench:lease: ${err.message}\n`)
    process.exit(1)
  })
  process.exit(0)
} else if (values.store !== 'file') {
  throw new Error(`--store must be file or postgres, not ${values.store}`)
}

const only = values.only?.split(',').map((x) => x.trim()).filter(Boolean)
const runs = (section) => only === undefined || only.includes(section)
if (values.fair !== undefined && values.fair !== 'true' && values.fair !== 'false') throw new Error('--fair must be true or false')
const strace = !values['skip-strace'] && haveStrace()
if (!values['skip-strace'] && !strace) process.stderr.write('bench:lease: strace not found, system calls will not be counted (apt-get update && apt-get install -y strace)\n')
console.log(`node ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
console.log(`command: node bench/lease.mjs ${process.argv.slice(2).join(' ')}`)

const base = mkdtempSync(join(tmpdir(), 'proclease-bench-'))
let seq = 0
const freshRoot = () => join(base, `r${seq++}`)

async function uncontended(impl) {
  const root = freshRoot()
  let n = 0
  const until = performance.now() + SECONDS * 1000
  if (impl === 'proclease') {
    while (performance.now() < until) {
      const lease = await acquireLease({ key: 'u', limit: 1, lockRoot: root })
      await lease.release()
      n++
    }
  } else {
    mkdirSync(root, { recursive: true })
    const file = join(root, 'resource')
    writeFileSync(file, '')
    while (performance.now() < until) {
      const release = await lockfile.lock(file, { stale: 2000, realpath: false })
      await release()
      n++
    }
  }
  return n / SECONDS
}

async function recovery(impl) {
  const out = []
  for (let i = 0; i < RECOVERIES; i++) {
    const root = freshRoot()
    const holder = start('holder', impl, root)
    await holder.next('held')
    const waiter = start('waiter', impl, root)
    await waiter.next('waiting')
    // Let the waiter settle into its idle wait before the holder dies.
    await sleep(300)
    const killedAt = process.hrtime.bigint()
    holder.child.kill('SIGKILL')
    const grant = await waiter.next('grant')
    out.push(Number(BigInt(grant.t) - killedAt) / 1e6)
    await waiter.exited
  }
  return { median: median(out), max: Math.max(...out) }
}

function printCompare() {
  const a = results.proclease
  const b = results['proper-lockfile']
  console.log('\nAgainst proper-lockfile')
  printTable(['metric', 'proclease', 'proper-lockfile', 'ratio'], [
    ['uncontended acquire+release', `${a.ops.toFixed(0)}/s`, `${b.ops.toFixed(0)}/s`, `${(a.ops / b.ops).toFixed(2)}× throughput`],
    ['hand-off, 4 procs, median', fmt(a.handoff.median), fmt(b.handoff.median), `${(b.handoff.median / a.handoff.median).toFixed(1)}× faster`],
    ['hand-off, 4 procs, p99', fmt(a.handoff.p99), fmt(b.handoff.p99), `${(b.handoff.p99 / a.handoff.p99).toFixed(1)}× faster`],
    ['recovery after SIGKILL, median', fmt(a.recovery.median), fmt(b.recovery.median), `${(b.recovery.median / a.recovery.median).toFixed(1)}× faster`],
    ['recovery after SIGKILL, worst', fmt(a.recovery.max), fmt(b.recovery.max), `${(b.recovery.max / a.recovery.max).toFixed(1)}× faster`],
    ['CPU of a waiter over a 2 s wait', fmt(a.cpu), fmt(b.cpu), `${(b.cpu / Math.max(a.cpu, 0.001)).toFixed(1)}× less`],
  ])
  console.log(`proper-lockfile settings: stale 2000 ms (its minimum), retry every 50 ms; hand-offs measured: ${a.handoff.n} / ${b.handoff.n}`)
}

const impls = ['proclease', 'proper-lockfile']
const results = {}
let scale = null
try {
  for (const impl of runs('compare') ? impls : []) {
    process.stderr.write(`measuring ${impl}…\n`)
    results[impl] = {
      ops: await uncontended(impl),
      handoff: await handoff(impl, freshRoot(), ROUNDS),
      recovery: await recovery(impl),
      cpu: await idleCpu(impl, freshRoot()),
    }
  }
  if (runs('compare')) printCompare()
  const scaleSections = only?.filter((x) => x !== 'compare')
  if (scaleSections === undefined || scaleSections.length > 0) {
    scale = await runScale({ base, quick: values.quick, seconds: SECONDS, only: scaleSections, strace, fair: values.fair === undefined ? undefined : values.fair === 'true' })
  }
} finally {
  rmSync(base, { recursive: true, force: true })
}
if (values.json) writeFileSync(values.json, JSON.stringify({ compare: results, scale }, null, 2))
