// Lease benchmark: proclease side by side with proper-lockfile, in one run on one machine.
// Usage: npm run bench:lease [-- --seconds 2 --rounds 40 --recoveries 5]
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import lockfile from 'proper-lockfile'
import { acquireLease } from '../dist/index.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '20' },
    recoveries: { type: 'string', default: '5' },
  },
})
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const RECOVERIES = Number(values.recoveries)
const WORKER = new URL('./lease-worker.mjs', import.meta.url).pathname
const base = mkdtempSync(join(tmpdir(), 'proclease-bench-'))
let seq = 0
const freshRoot = () => join(base, `r${seq++}`)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]
const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3)) + ' ms'

function start(role, impl, root, arg = '', stdin = 'ignore', onEvent = () => {}) {
  const child = spawn(process.execPath, [WORKER, role, impl, root, String(arg)], { stdio: [stdin, 'pipe', 'inherit'] })
  const events = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    const ev = JSON.parse(line)
    events.push(ev)
    onEvent(ev)
    for (const w of [...waiters]) if (w.name === ev.ev) { waiters.splice(waiters.indexOf(w), 1); w.resolve(ev) }
  })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const next = (name) => {
    const seen = events.find((e) => e.ev === name && !e.taken)
    if (seen) { seen.taken = true; return Promise.resolve(seen) }
    return new Promise((resolve) => waiters.push({ name, resolve: (e) => { e.taken = true; resolve(e) } }))
  }
  return { child, events, next, exited }
}

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

async function handoff(impl) {
  // Four processes: one holds, three wait idle. The holder is told to release; the time from
  // its release to the next grant is one hand-off. Then the new holder is told, and so on.
  const root = freshRoot()
  const queue = []
  let notify = null
  const workers = Array.from({ length: 4 }, (_, id) =>
    start('pingpong', impl, root, '', 'pipe', (e) => {
      if (e.ev !== 'grant') return
      queue.push({ id, e })
      notify?.()
    }),
  )
  const nextGrant = async () => {
    while (queue.length === 0) await new Promise((r) => { notify = r })
    return queue.shift()
  }
  const lat = []
  let holder = await nextGrant()
  for (let i = 0; i < ROUNDS; i++) {
    // Let the waiters settle into their idle wait before the release. The random part keeps a
    // poller's schedule from lining up with the release (a fixed 150 ms is 3 × its 50 ms period).
    await new Promise((r) => setTimeout(r, 150 + Math.random() * 100))
    const w = workers[holder.id]
    w.child.stdin.write('release\n')
    const rel = await w.next('release')
    holder = await nextGrant()
    lat.push(Number(BigInt(holder.e.t) - BigInt(rel.t)) / 1e6)
    w.child.stdin.write('queue\n')
  }
  for (const w of workers) { w.child.stdin.end(); w.child.kill('SIGKILL') }
  await Promise.all(workers.map((w) => w.exited))
  return { median: median(lat), p99: pct(lat, 0.99), n: lat.length }
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
    await new Promise((r) => setTimeout(r, 300))
    const killedAt = process.hrtime.bigint()
    holder.child.kill('SIGKILL')
    const grant = await waiter.next('grant')
    out.push(Number(BigInt(grant.t) - killedAt) / 1e6)
    await waiter.exited
  }
  return { median: median(out), max: Math.max(...out) }
}

async function idleCpu(impl) {
  const root = freshRoot()
  const holder = start('holder', impl, root)
  await holder.next('held')
  const waiter = start('idle-waiter', impl, root, 2000)
  const cpu = await waiter.next('cpu')
  holder.child.kill('SIGKILL')
  await Promise.all([holder.exited, waiter.exited])
  return cpu.us / 1000
}

const impls = ['proclease', 'proper-lockfile']
const results = {}
try {
  for (const impl of impls) {
    process.stderr.write(`measuring ${impl}…\n`)
    results[impl] = {
      ops: await uncontended(impl),
      handoff: await handoff(impl),
      recovery: await recovery(impl),
      cpu: await idleCpu(impl),
    }
  }
} finally {
  rmSync(base, { recursive: true, force: true })
}

const a = results.proclease
const b = results['proper-lockfile']
const rows = [
  ['uncontended acquire+release', `${a.ops.toFixed(0)}/s`, `${b.ops.toFixed(0)}/s`, `${(a.ops / b.ops).toFixed(2)}× throughput`],
  ['hand-off, 4 procs, median', fmt(a.handoff.median), fmt(b.handoff.median), `${(b.handoff.median / a.handoff.median).toFixed(1)}× faster`],
  ['hand-off, 4 procs, p99', fmt(a.handoff.p99), fmt(b.handoff.p99), `${(b.handoff.p99 / a.handoff.p99).toFixed(1)}× faster`],
  ['recovery after SIGKILL, median', fmt(a.recovery.median), fmt(b.recovery.median), `${(b.recovery.median / a.recovery.median).toFixed(1)}× faster`],
  ['recovery after SIGKILL, worst', fmt(a.recovery.max), fmt(b.recovery.max), `${(b.recovery.max / a.recovery.max).toFixed(1)}× faster`],
  ['CPU of a waiter over a 2 s wait', fmt(a.cpu), fmt(b.cpu), `${(b.cpu / Math.max(a.cpu, 0.001)).toFixed(1)}× less`],
]
const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length), ['metric', 'proclease', 'proper-lockfile', 'ratio'][i].length))
const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ')
console.log(line(['metric', 'proclease', 'proper-lockfile', 'ratio']))
console.log(widths.map((w) => '-'.repeat(w)).join('  '))
for (const r of rows) console.log(line(r))
console.log(`\nproper-lockfile settings: stale 2000 ms (its minimum), retry every 50 ms; hand-offs measured: ${a.handoff.n} / ${b.handoff.n}`)
