// The file store at scale (issue 10), each figure beside its baseline from the same run:
//   hand-off latency with 1, 2, 8, 32, 64 waiting processes, and the wakeups and system calls each
//   waiter that is not served makes per hand-off; acquire+release with 1, 100, 1,000 live holders;
//   peak concurrent holders with limit 1,000 and 1,200 demanders; overtakes and wait spread with
//   and without `fair`; uncontended acquire+release against a C loop making the same system calls.
// Workers: bench/lease-scale-worker.mjs. Times: CLOCK_MONOTONIC (process.hrtime), across processes.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { acquireLease } from '../dist/index.js'
import { fmt, median, printTable, sleep, startScript } from './lease-common.mjs'

const WORKER = new URL('./lease-scale-worker.mjs', import.meta.url).pathname
const FLOOR_C = new URL('./c/lease_floor.c', import.meta.url).pathname

/** Full run (a few minutes on 2 cores) and --quick (CI: smaller, same shape). */
export const SIZES = {
  full: { waiters: [1, 2, 8, 32, 64], rounds: 100, straceRounds: 10, holders: [1, 100, 1000], holderProcs: 4, peak: { limit: 1000, demanders: 1200, procs: 20 }, peakHoldMs: [1000, 200], fair: { procs: 16, limit: 2, rounds: 40, holdMs: 2 } },
  quick: { waiters: [1, 8, 32], rounds: 15, straceRounds: 5, holders: [1, 100, 300], holderProcs: 2, peak: { limit: 200, demanders: 240, procs: 8 }, peakHoldMs: [1000], fair: { procs: 8, limit: 2, rounds: 20, holdMs: 2 } },
}

const SECTIONS = ['handoff', 'holders', 'peak', 'fairness', 'floor']
/** Nearest-rank percentile: of 100 samples, p99 is the second worst, not the worst. */
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(xs.length * p) - 1)]
const nowMs = () => Number(process.hrtime.bigint() / 1000n) / 1000
const realSeconds = () => (performance.timeOrigin + performance.now()) / 1000

/** Workers not yet ended: a section that fails must not leave them running (or writing) behind it. */
const live = new Set()
function worker(role, spec, onEvent) {
  const w = startScript(WORKER, [role, JSON.stringify(spec)], onEvent)
  live.add(w)
  void w.exited.then(() => live.delete(w))
  return w
}

async function stopAll(workers) {
  for (const w of workers) {
    w.child.stdin.end()
    w.child.kill('SIGKILL')
  }
  await Promise.all(workers.map((w) => w.exited))
}

// ---- wakeups, settling and system calls ---------------------------------------------------------

/** Times the kernel scheduled any thread of `pid` onto a CPU (schedstat's third field, summed). */
function wakeups(pid) {
  let n = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      n += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[2])
    } catch (err) {
      if (err.code !== 'ENOENT') throw err // a thread that ended between the listing and the read
    }
  }
  return n
}

/** The same for the main thread only: cheap enough to sample every few milliseconds. */
const mainRuns = (pid) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[2])

/**
 * Resolves once no main thread of `pids` has been scheduled for `quietMs` (every waiter is back
 * asleep), or after `capMs`; resolves whether it settled.
 */
async function settle(pids, quietMs = 20, capMs = 3000) {
  const until = performance.now() + capMs
  let last = pids.map(mainRuns).join()
  let since = performance.now()
  while (performance.now() < until) {
    await sleep(4)
    const cur = pids.map(mainRuns).join()
    if (cur !== last) {
      last = cur
      since = performance.now()
    } else if (performance.now() - since >= quietMs) return true
  }
  return false
}

/** Whether strace can run here; the system calls figure is skipped (and says why) otherwise. */
export function haveStrace() {
  return spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0
}

/** Attaches one `strace -f -ttt` per pid (all its threads), resolving once every main thread is traced. */
async function attachStrace(pids, dir) {
  const tracers = pids.map((pid) => {
    const out = join(dir, `strace-${pid}.txt`)
    const child = spawn('strace', ['-f', '-ttt', '-qq', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'inherit'] })
    const exited = new Promise((r) => child.on('exit', r))
    return { pid, out, child, exited }
  })
  const traced = (pid) => !/TracerPid:\s+0\n/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  const until = performance.now() + 30_000
  while (!pids.every(traced)) {
    if (performance.now() > until) throw new Error('strace did not attach within 30 s')
    await sleep(20)
  }
  // The other threads of each process are attached right after the main one.
  await sleep(300)
  return tracers
}

async function detachStrace(tracers) {
  for (const t of tracers) t.child.kill('SIGINT')
  await Promise.all(tracers.map((t) => t.exited))
}

/** System calls entered in strace log `file` within each [from, to] window (realtime seconds). */
function syscallsIn(file, windows) {
  const counts = windows.map(() => 0)
  const re = /^\d+\s+(\d+\.\d+)\s+[a-z_0-9]+\(/
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = re.exec(line)
    if (!m) continue
    const t = Number(m[1])
    windows.forEach(([from, to], i) => {
      if (t >= from && t < to) counts[i]++
    })
  }
  return counts
}

// ---- 1, 2: hand-off latency, wakeups and system calls per non-served waiter -----------------------

/**
 * `waiters` processes wait while one holds (limit 1). Each round, once all are asleep, the holder
 * is told to release; the time from its release call to the next grant is one hand-off. Wakeups
 * (and, traced, system calls) of the waiters that were not served are counted over the round.
 */
async function handoffAt(base, waiters, rounds, straceRounds, fair) {
  const root = join(base, `handoff-${waiters}`)
  const spec = { root, key: 'handoff', limit: 1, ...(fair === undefined ? {} : { fair }) }
  const grants = []
  let notify = null
  const ws = []
  for (let id = 0; id <= waiters; id++) {
    ws.push(
      worker('relay', spec, (e) => {
        if (e.ev !== 'grant') return
        grants.push({ id, t: e.t })
        notify?.()
      }),
    )
  }
  const nextGrant = async () => {
    while (grants.length === 0) await new Promise((r) => { notify = r })
    return grants.shift()
  }
  const pids = (await Promise.all(ws.map((w) => w.next('ready')))).map((e) => e.pid)
  let holder = await nextGrant()
  await Promise.all(ws.filter((_, id) => id !== holder.id).map((w) => w.next('want')))
  let unsettled = 0
  if (!(await settle(pids))) unsettled++

  const lat = []
  const wake = []
  const windows = []
  const roundOnce = async (record) => {
    const others = pids.map((pid, id) => ({ pid, id })).filter((p) => p.id !== holder.id)
    const before = others.map((p) => wakeups(p.pid))
    const from = realSeconds()
    const w = ws[holder.id]
    w.child.stdin.write('release\n')
    const rel = await w.next('release')
    const next = await nextGrant()
    if (!(await settle(pids))) unsettled++
    const to = realSeconds()
    const after = others.map((p) => wakeups(p.pid))
    const idle = others.map((p, i) => ({ ...p, wakeups: after[i] - before[i] })).filter((p) => p.id !== next.id)
    record({ latency: next.t - rel.t, idle, from, to, served: next.id, released: holder.id })
    // The releaser waits again; the round ends when it (and everyone) is asleep.
    w.child.stdin.write('queue\n')
    await w.next('want')
    holder = next
    if (!(await settle(pids))) unsettled++
  }
  for (let i = 0; i < rounds; i++) {
    await roundOnce((r) => {
      lat.push(r.latency)
      wake.push(r.idle.reduce((s, p) => s + p.wakeups, 0) / Math.max(1, r.idle.length))
    })
  }

  let syscalls = null
  if (straceRounds > 0) {
    const tracers = await attachStrace(pids, base)
    await settle(pids)
    for (let i = 0; i < straceRounds; i++) await roundOnce((r) => windows.push(r))
    await detachStrace(tracers)
    // Per round, the mean over the waiters that were neither served nor releasing.
    const perRound = windows.map((win) => {
      const idle = tracers.filter((_, id) => id !== win.served && id !== win.released)
      const counts = idle.map((t) => syscallsIn(t.out, [[win.from, win.to]])[0])
      return counts.reduce((s, c) => s + c, 0) / Math.max(1, counts.length)
    })
    syscalls = { median: median(perRound), max: Math.max(...perRound) }
  }
  await stopAll(ws)
  rmSync(root, { recursive: true, force: true })
  return { waiters, median: median(lat), p99: pct(lat, 0.99), max: Math.max(...lat), wakeups: median(wake), syscalls, n: lat.length, unsettled }
}

// ---- 3: claims against many live holders -------------------------------------------------------

/** Acquire+release of a key on which `live - 1` other slots are held by other processes (limit 2000). */
async function holdersCost(base, sizes, seconds) {
  const root = join(base, 'holders')
  const limit = 2000
  const spec = { root, key: 'many', limit }
  const ws = []
  let held = 0
  const out = []
  for (const live of sizes.holders) {
    // Add holder processes (a few, sharing the difference) until live - 1 other slots are held.
    const want = live - 1 - held
    if (want > 0) {
      const procs = Math.min(sizes.holderProcs, want)
      const added = Array.from({ length: procs }, (_, i) => worker('hold-many', { ...spec, count: Math.floor(want / procs) + (i < want % procs ? 1 : 0) }))
      ws.push(...added)
      await Promise.all(added.map((w) => w.next('held')))
      held += want
    }
    const times = []
    const until = performance.now() + seconds * 1000
    while (performance.now() < until || times.length < 20) {
      const t0 = performance.now()
      const lease = await acquireLease({ key: 'many', limit, lockRoot: root })
      await lease.release()
      times.push(performance.now() - t0)
    }
    out.push({ live, median: median(times), p99: pct(times, 0.99), n: times.length })
  }
  await stopAll(ws)
  rmSync(root, { recursive: true, force: true })
  return out
}

// ---- 4: peak concurrent holders ------------------------------------------------------------------

async function peakHolders(base, p) {
  const root = join(base, 'peak')
  const per = Math.ceil(p.demanders / p.procs)
  const ws = Array.from({ length: p.procs }, (_, i) =>
    worker('demand', { root, key: 'peak', limit: p.limit, count: Math.min(per, p.demanders - i * per), holdMs: p.holdMs, waitMs: 300_000 }),
  )
  await Promise.all(ws.map((w) => w.next('ready')))
  const t0 = nowMs()
  for (const w of ws) w.child.stdin.write('go\n')
  const done = await Promise.all(ws.map((w) => w.next('done')))
  const elapsed = nowMs() - t0
  await stopAll(ws)
  rmSync(root, { recursive: true, force: true })
  const edges = []
  for (const d of done) for (const [g, r] of d.intervals) edges.push([g, 1], [r, -1])
  // A release stamped at the same instant as a grant counts first: never an overstated peak.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let cur = 0
  let peak = 0
  for (const [, d] of edges) peak = Math.max(peak, (cur += d))
  const granted = done.reduce((s, d) => s + d.intervals.length, 0)
  const errors = {}
  for (const d of done) for (const [code, n] of Object.entries(d.errors)) errors[code] = (errors[code] ?? 0) + n
  // The best any engine can do: ceil(demanders / limit) waves of holdMs.
  const ideal = Math.ceil(p.demanders / p.limit) * p.holdMs
  return { ...p, peak, granted, errors, elapsed, ideal }
}

// ---- 5: fairness -----------------------------------------------------------------------------------

/** Largest number of later arrivals (by more than `marginMs`) granted before one acquisition. */
function maxOvertaken(all, marginMs) {
  let max = 0
  for (const x of all) {
    let n = 0
    for (const y of all) if (y.a > x.a + marginMs && y.g < x.g) n++
    if (n > max) max = n
  }
  return max
}

/**
 * The same, counting from the queue: for each acquisition that waited, later entrants granted
 * before it — an entrant being a waiter that took its place later, or an acquisition granted
 * without waiting after this one had taken its place. Fair waiting promises 0 here; the count by
 * call time above also includes who got to the key's gate first.
 */
function maxOvertakenInQueue(all) {
  let max = 0
  for (const x of all) {
    if (x.q === null) continue
    let n = 0
    for (const y of all) if (y !== x && (y.q ?? y.g) > x.q && y.g < x.g) n++
    if (n > max) max = n
  }
  return max
}

async function fairness(base, f, fair) {
  const root = join(base, `fair-${fair}`)
  const ws = Array.from({ length: f.procs }, () => worker('fair-loop', { root, key: 'fair', limit: f.limit, fair, rounds: f.rounds, holdMs: f.holdMs }))
  await Promise.all(ws.map((w) => w.next('ready')))
  for (const w of ws) w.child.stdin.write('go\n')
  const done = await Promise.all(ws.map((w) => w.next('done')))
  await stopAll(ws)
  rmSync(root, { recursive: true, force: true })
  const all = done.flatMap((d, p) => d.acq.map(([a, g, , q]) => ({ p, a, g, q: q ?? null })))
  const waits = all.map((x) => x.g - x.a)
  return {
    fair,
    n: all.length,
    overtaken: maxOvertaken(all, 0),
    overtaken1ms: maxOvertaken(all, 1),
    overtakenInQueue: maxOvertakenInQueue(all),
    p50: median(waits),
    p99: pct(waits, 0.99),
    max: Math.max(...waits),
  }
}

// ---- 6: the floor --------------------------------------------------------------------------------

const MEMORY_CALLS = new Set(['mmap', 'munmap', 'madvise', 'mprotect', 'brk'])

/** System calls of one steady-state acquire+release (strace), minus the garbage collector's. */
function traceOne(base) {
  const root = join(base, 'trace')
  const out = join(base, 'trace-one.txt')
  execFileSync('strace', ['-f', '-qq', '-o', out, process.execPath, WORKER, 'trace-one', JSON.stringify({ root, key: 'u', limit: 1 })], { stdio: 'ignore' })
  const lines = readFileSync(out, 'utf8').split('\n')
  const start = lines.findIndex((l) => l.includes('BENCH-MARK-START'))
  const end = lines.findIndex((l) => l.includes('BENCH-MARK-END'))
  const calls = []
  for (const l of lines.slice(start + 1, end)) {
    const m = /^\d+\s+([a-z_0-9]+)\(/.exec(l)
    if (m && !MEMORY_CALLS.has(m[1])) calls.push(m[1])
  }
  return calls
}

/**
 * Uncontended acquire+release in this process against bench/c/lease_floor.c (compiled here), in
 * three alternating turns of about seconds/3 each, so that both see the same machine load.
 * Per-op figures are means over each turn; the result is the median turn of each.
 */
async function floorAndEngine(base, seconds) {
  const exe = join(base, 'lease_floor')
  execFileSync('cc', ['-O2', '-o', exe, FLOOR_C], { stdio: 'inherit' })
  const runC = (iters, n) => {
    const out = execFileSync(exe, [String(iters), join(base, `floor-${n}`)], { encoding: 'utf8' })
    rmSync(join(base, `floor-${n}`), { recursive: true, force: true })
    const m = /ns_per_op ([\d.]+) syscalls (\d+)/.exec(out)
    return { ms: Number(m[1]) / 1e6, syscalls: Number(m[2]) }
  }
  const runEngine = async (turnMs, n) => {
    const root = join(base, `uncontended-${n}`)
    let ops = 0
    const t0 = performance.now()
    while (performance.now() - t0 < turnMs) {
      const lease = await acquireLease({ key: 'u', limit: 1, lockRoot: root })
      await lease.release()
      ops++
    }
    const ms = (performance.now() - t0) / ops
    rmSync(root, { recursive: true, force: true })
    return ms
  }
  const turnMs = (seconds * 1000) / 3
  const probe = runC(500, 'probe')
  await runEngine(200, 'warm')
  const c = []
  const engine = []
  for (let i = 0; i < 3; i++) {
    c.push(runC(Math.max(1000, Math.round(turnMs / probe.ms)), i).ms)
    engine.push(await runEngine(turnMs, i))
  }
  return { c: median(c), engine: median(engine), syscalls: probe.syscalls }
}

// ---- the run -----------------------------------------------------------------------------------------

/**
 * Runs the selected sections (default all) in `base`, prints a table each, and returns the raw
 * results. `strace`: whether system calls are counted (attaching strace to waiters).
 */
export async function runScale({ base, quick, seconds, only, strace, fair }) {
  const want = new Set(only ?? SECTIONS)
  for (const s of want) if (!SECTIONS.includes(s)) throw new Error(`--only: unknown section ${s} (known: ${SECTIONS.join(', ')})`)
  try {
    return await runSections(base, quick ? SIZES.quick : SIZES.full, want, seconds, strace, fair)
  } finally {
    await stopAll([...live])
  }
}

async function runSections(base, sizes, want, seconds, strace, fair) {
  const results = {}
  const say = (m) => process.stderr.write(`${m}\n`)

  if (want.has('handoff')) {
    const rows = []
    for (const w of sizes.waiters) {
      say(`hand-off with ${w} waiting process(es)…`)
      rows.push(await handoffAt(base, w, sizes.rounds, strace ? sizes.straceRounds : 0, fair))
    }
    results.handoff = rows
    const b = rows[0]
    console.log(`\nHand-off, limit 1 (one holds, N wait; release when all are asleep; ${sizes.rounds} hand-offs each${fair === undefined ? '' : `, fair: ${fair}`})`)
    printTable(['waiting', 'median', 'p99', 'max', `median vs ${b.waiters}`, 'wakeups/idle waiter/hand-off', 'syscalls/idle waiter/hand-off'], rows.map((r) => [
      String(r.waiters), fmt(r.median), fmt(r.p99), fmt(r.max), `${(r.median / b.median).toFixed(2)}×`,
      r.waiters > 1 ? r.wakeups.toFixed(1) : '—',
      r.waiters > 1 && r.syscalls ? `${r.syscalls.median.toFixed(1)} (max ${r.syscalls.max.toFixed(1)})` : '—',
    ]))
    const unsettled = rows.reduce((s, r) => s + r.unsettled, 0)
    if (unsettled > 0) console.log(`(${unsettled} settle waits hit their 3 s cap: some waiter never went quiet)`)
    if (!strace) console.log('(system calls not counted: strace missing or --skip-strace; apt-get install strace)')
  }

  if (want.has('holders')) {
    say('acquire+release against live holders…')
    const rows = await holdersCost(base, sizes, seconds)
    results.holders = rows
    console.log('\nAcquire+release with live holders (limit 2000; the others held by other processes)')
    printTable(['live holders', 'median', 'p99', `vs ${rows[0].live}`, 'samples'], rows.map((r) => [
      String(r.live), fmt(r.median), fmt(r.p99), `${(r.median / rows[0].median).toFixed(2)}×`, String(r.n),
    ]))
  }

  if (want.has('peak')) {
    // Two hold times: with 1 s holds the key can fill (the target: >= 95 % of the limit); with
    // 200 ms holds filling it takes over 5,000 grants a second, a test of throughput.
    const rows = []
    for (const holdMs of sizes.peakHoldMs) {
      const p = { ...sizes.peak, holdMs }
      say(`peak holders: limit ${p.limit}, ${p.demanders} demanders in ${p.procs} processes, holding ${holdMs} ms…`)
      rows.push(await peakHolders(base, p))
    }
    results.peak = rows
    const r0 = rows[0]
    console.log(`\nPeak concurrent holders: limit ${r0.limit}, ${r0.demanders} demanders in ${r0.procs} processes, each holding once`)
    printTable(['hold', 'peak holders', 'of limit', 'granted', 'all served in', 'vs ideal', 'lease errors met (release retried)'], rows.map((r) => [
      fmt(r.holdMs), String(r.peak), `${((100 * r.peak) / r.limit).toFixed(1)} %`, `${r.granted} of ${r.demanders}`, fmt(r.elapsed), `${(r.elapsed / r.ideal).toFixed(1)}× (${fmt(r.ideal)})`,
      Object.entries(r.errors).map(([c, n]) => `${n} ${c}`).join(', ') || 'none',
    ]))
  }

  if (want.has('fairness')) {
    const f = sizes.fair
    const rows = []
    for (const fairOpt of [true, false]) {
      say(`fairness, fair: ${fairOpt}…`)
      rows.push(await fairness(base, f, fairOpt))
    }
    results.fairness = rows
    console.log(`\nFairness: ${f.procs} processes looping on limit ${f.limit} (acquire, hold ${f.holdMs} ms, release) ${f.rounds} times each`)
    printTable(['option', 'most overtakes of one wait', '(by arrivals ≥ 1 ms later)', '(once queued)', 'wait p50', 'wait p99', 'wait max', 'acquisitions'], rows.map((r) => [
      `fair: ${r.fair}`, String(r.overtaken), String(r.overtaken1ms), String(r.overtakenInQueue), fmt(r.p50), fmt(r.p99), fmt(r.max), String(r.n),
    ]))
  }

  if (want.has('floor')) {
    say('uncontended acquire+release against the C floor…')
    const f = await floorAndEngine(base, seconds)
    const calls = strace ? traceOne(base) : null
    results.floor = { ...f, calls }
    console.log('\nUncontended acquire+release against a C loop making the same system calls (bench/c/lease_floor.c; alternating turns)')
    printTable(['method', 'per acquire+release (mean)', 'ratio'], [
      ['C floor', fmt(f.c), '1×'],
      ['proclease', fmt(f.engine), `${(f.engine / f.c).toFixed(2)}× the floor`],
    ])
    const c = { syscalls: f.syscalls }
    if (calls) {
      const same = calls.length === c.syscalls
      console.log(`engine: ${calls.length} system calls per acquire+release (strace, memory management left out); floor: ${c.syscalls}${same ? '' : ' — they differ: update bench/c/lease_floor.c to the engine\'s sequence before quoting the ratio'}`)
      if (!same) console.log(`engine sequence: ${calls.join(' ')}`)
    }
  }
  return results
}
