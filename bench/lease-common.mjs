// Helpers shared by the lease benchmark's modes: child processes speaking JSON lines, statistics
// and the result table.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

const WORKER = new URL('./lease-worker.mjs', import.meta.url).pathname

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
export const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]
export const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3)) + ' ms'
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Spawns bench/lease-worker.mjs in `role`; `next(name)` resolves with its next event of that name. */
export function start(role, impl, target, arg = '', onEvent = () => {}) {
  return startScript(WORKER, [role, impl, target, String(arg)], onEvent)
}

/** Spawns a JSON-lines worker `script` with `args`; the same handle as `start`. */
export function startScript(script, args, onEvent = () => {}) {
  const label = args.slice(0, 2).join('/').slice(0, 60)
  // stdin is a pipe for every worker: commands for some, and for all the end of this process
  // (EOF), however it ends, so that no worker outlives a killed run.
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdin.on('error', () => {})
  const events = []
  const waiters = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    const ev = JSON.parse(line)
    events.push(ev)
    onEvent(ev)
    for (const w of [...waiters]) if (w.name === ev.ev) { waiters.splice(waiters.indexOf(w), 1); w.resolve(ev) }
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  // A worker that dies early must fail the run, not hang it.
  void exited.then(({ code, signal }) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`worker ${label} exited (${code ?? signal}) before "${w.name}"`))
  })
  const next = (name) => {
    const seen = events.find((e) => e.ev === name && !e.taken)
    if (seen) { seen.taken = true; return Promise.resolve(seen) }
    if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`worker ${label} already exited`))
    return new Promise((resolve, reject) => waiters.push({ name, reject, resolve: (e) => { e.taken = true; resolve(e) } }))
  }
  return { child, events, next, exited }
}

/**
 * Hand-off: `procs` processes (four); one holds, the others wait idle. The holder is told to release; the time
 * from its release to the next grant is one hand-off. Then the new holder is told, and so on.
 */
export async function handoff(impl, target, rounds, procs = 4) {
  const queue = []
  let notify = null
  const workers = Array.from({ length: procs }, (_, id) =>
    start('pingpong', impl, target, '', (e) => {
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
  for (let i = 0; i < rounds; i++) {
    // Let the waiters settle into their idle wait before the release. The random part keeps a
    // poller's schedule from lining up with the release (a fixed 150 ms is 3 × its 50 ms period).
    await sleep(150 + Math.random() * 100)
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

/** CPU a waiter uses over a `waitMs` wait that ends busy, against a live holder. */
export async function idleCpu(impl, target, waitMs = 2000) {
  const holder = start('holder', impl, target)
  await holder.next('held')
  const waiter = start('idle-waiter', impl, target, waitMs)
  const cpu = await waiter.next('cpu')
  holder.child.kill('SIGKILL')
  await Promise.all([holder.exited, waiter.exited])
  return cpu.us / 1000
}

/** Prints rows [metric, a, b, ratio] under `header` as an aligned text table. */
export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(...rows.map((r) => r[i].length), h.length))
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ')
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(r))
}
