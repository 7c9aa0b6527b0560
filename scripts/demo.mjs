#!/usr/bin/env node
// npm run demo — a short, real run of proclease (about 12 s).
//
// Five worker processes contend for a key with 2 slots in a private temporary lock root. A live
// timeline shows every grant and release. Midway, one holder is SIGKILLed while it holds its slot;
// a waiter reclaims the slot once the holder is proven dead (its kernel lock is free and its pid
// is gone) — the demo measures how long that took. The summary checks, with an independent
// interval sweep over the reported holds, that never more than 2 workers held the key at once.
// Exits 0 on success, 1 if the limit was exceeded (or the kill was not recovered from).
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const pkgRoot = resolve(here, '..')

const WORKERS = 5
const LIMIT = 2
const KEY = 'demo'
const KILL_AFTER_MS = 4500
const STOP_AFTER_MS = 11000

// `node scripts/demo.mjs` on a fresh checkout: build what the workers import.
if (!existsSync(join(pkgRoot, 'dist', 'index.js'))) {
  console.log('building dist/ (npm run build)…')
  execFileSync('npm', ['run', 'build'], { cwd: pkgRoot, stdio: 'inherit' })
}

const { inspectLeases } = await import(join(pkgRoot, 'dist', 'index.js'))

const tmp = mkdtempSync(join(tmpdir(), 'proclease-demo-'))
const lockRoot = join(tmp, 'locks')
const t0 = process.hrtime.bigint()
const ms = (t) => Number(BigInt(t) - t0) / 1e6
const stamp = (t) => `t=+${(ms(t) / 1000).toFixed(2)}s`.padEnd(10)

/** @type {Map<number, {proc: import('node:child_process').ChildProcess, exited: Promise<{code: number|null, signal: string|null}>}>} */
const workers = new Map()
/** Holds as reported: { worker, slot, fence, start, end (ms since t0), killed } */
const holds = []
const open = new Map() // worker -> hold
const slots = new Array(LIMIT).fill(null) // slot -> label, for the live view (slots >= LIMIT are shown too)
let victim = null // { worker, slot, at }
let recovery = null // { ms, worker, slot, how }
let stopping = false
let cleanedUp = false

function view() {
  return `[${slots.map((s) => (s === null ? '  --  ' : s.padEnd(6))).join('|')}]`
}

function line(t, text) {
  console.log(`${stamp(t)} ${view()}  ${text}`)
}

function liveHolders() {
  return [...open.values()].filter((h) => !h.killed).length
}

function onEvent(worker, ev) {
  if (ev.ev === 'acquired') {
    const hold = { worker, slot: ev.slot, fence: ev.fence, start: ms(ev.t), end: null, killed: false }
    holds.push(hold)
    open.set(worker, hold)
    slots[ev.slot] = `w${worker}`
    let note = ''
    if (victim && recovery === null && ms(ev.t) > victim.at) {
      // Proof the victim's slot was reused: its own index was granted again, or the live holders
      // are back at the limit (the victim's record counted against it until reclaimed).
      const how = ev.slot === victim.slot ? 'same slot' : liveHolders() === LIMIT ? 'limit reached again' : null
      if (how) {
        recovery = { ms: ms(ev.t) - victim.at, worker, slot: ev.slot, how }
        note = `   <- reclaimed from killed worker ${victim.worker}, ${recovery.ms.toFixed(1)} ms after SIGKILL`
      }
    }
    line(ev.t, `worker ${worker} acquired slot ${ev.slot} (fence ${ev.fence})${note}`)
  } else if (ev.ev === 'released') {
    const hold = open.get(worker)
    if (hold) {
      hold.end = ms(ev.t)
      open.delete(worker)
    }
    if (slots[ev.slot] === `w${worker}`) slots[ev.slot] = null
    line(ev.t, `worker ${worker} released slot ${ev.slot} (held ${((hold ? hold.end - hold.start : 0) / 1000).toFixed(2)}s)`)
  }
}

function startWorker(id) {
  const proc = spawn(process.execPath, [join(here, 'demo-worker.mjs'), String(id), lockRoot, KEY, String(LIMIT)], {
    cwd: pkgRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const exited = new Promise((resolveExit) => proc.once('exit', (code, signal) => resolveExit({ code, signal })))
  createInterface({ input: proc.stdout }).on('line', (text) => {
    try {
      onEvent(id, JSON.parse(text))
    } catch {
      console.log(`worker ${id}: ${text}`)
    }
  })
  workers.set(id, { proc, exited })
}

function killOneHolder() {
  // Wait for a fresh grant, then kill that holder a moment later, in the middle of its hold.
  const pick = [...open.values()].find((h) => !h.killed && ms(process.hrtime.bigint()) - h.start > 150)
  if (!pick) {
    setTimeout(killOneHolder, 20)
    return
  }
  const w = workers.get(pick.worker)
  const at = process.hrtime.bigint()
  w.proc.kill('SIGKILL')
  pick.killed = true
  pick.end = ms(at) // the hold really ends a little later: the kernel closes its files on exit
  victim = { worker: pick.worker, slot: pick.slot, at: ms(at) }
  slots[pick.slot] = `w${pick.worker}✝`
  line(at, `worker ${pick.worker} SIGKILLed while holding slot ${pick.slot}: no release, no cleanup`)
}

/** Largest number of hold intervals covering one instant (ends sort before starts at ties). */
function peakOverlap(intervals) {
  const points = []
  for (const h of intervals) {
    points.push([h.start, 1], [h.end, -1])
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let cur = 0
  let peak = 0
  for (const [, d] of points) {
    cur += d
    peak = Math.max(peak, cur)
  }
  return peak
}

async function cleanup() {
  if (cleanedUp) return
  cleanedUp = true
  for (const { proc } of workers.values()) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  await Promise.all([...workers.values()].map((w) => w.exited))
  rmSync(tmp, { recursive: true, force: true })
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    void cleanup().then(() => process.exit(130))
  })
}

console.log(`proclease demo: ${WORKERS} worker processes, key "${KEY}" with ${LIMIT} slots, lock root ${lockRoot}`)
console.log(`each worker loops: acquireLease → hold 0.4–1.2 s → release. [slot 0|slot 1] shows who holds what.\n`)

try {
  for (let i = 1; i <= WORKERS; i++) startWorker(i)
  setTimeout(killOneHolder, KILL_AFTER_MS)
  await new Promise((r) => setTimeout(r, STOP_AFTER_MS))
  stopping = true
  console.log(`${stamp(process.hrtime.bigint())} ${view()}  stopping: workers finish their current hold and exit`)
  for (const { proc } of workers.values()) proc.stdin.end()
  const exits = await Promise.all([...workers.entries()].map(async ([id, w]) => [id, await w.exited]))
  const end = ms(process.hrtime.bigint())

  // Nothing may be left behind: every live hold released, the dead one reclaimed.
  const status = await inspectLeases({ key: KEY, lockRoot })
  const keyDir = readdirSync(lockRoot).find((n) => n.startsWith('k-'))
  const leftovers = keyDir ? readdirSync(join(lockRoot, keyDir)).filter((n) => n !== 'gate' && n !== 'key') : []

  const closed = holds.filter((h) => h.end !== null)
  const peak = peakOverlap(closed)
  const badExits = exits.filter(([id, e]) => id !== victim?.worker && (e.code !== 0 || e.signal !== null))
  const fences = holds.map((h) => h.fence)
  const distinctFences = new Set(fences).size === fences.length
  const perWorker = new Map()
  for (const h of holds) perWorker.set(h.worker, (perWorker.get(h.worker) ?? 0) + 1)
  const fencesRise = [...perWorker.keys()].every((w) => {
    const f = holds.filter((h) => h.worker === w).map((h) => h.fence)
    return f.every((x, i) => i === 0 || x > f[i - 1])
  })

  const ok = peak <= LIMIT && recovery !== null && badExits.length === 0 && status.active === 0 && leftovers.length === 0 && distinctFences && fencesRise
  const mark = (good) => (good ? 'ok' : 'FAIL')
  console.log('\n──────────────────────────── summary ────────────────────────────')
  console.log(`run time               ${(end / 1000).toFixed(1)} s, ${WORKERS} processes, key "${KEY}", limit ${LIMIT}`)
  console.log(`grants                 ${holds.length}  (${[...perWorker.entries()].sort((a, b) => a[0] - b[0]).map(([w, n]) => `w${w}: ${n}`).join(', ')})`)
  console.log(`peak concurrent holds  ${peak} ≤ limit ${LIMIT}: ${mark(peak <= LIMIT)}  (interval sweep over ${closed.length} reported holds)`)
  if (victim && recovery) {
    console.log(`SIGKILL → slot reused  ${recovery.ms.toFixed(1)} ms  (worker ${victim.worker} killed holding slot ${victim.slot}; worker ${recovery.worker} got slot ${recovery.slot}: ${recovery.how})`)
  } else {
    console.log(`SIGKILL → slot reused  ${victim ? 'never: FAIL' : 'no holder was killed: FAIL'}`)
  }
  console.log(`fences                 ${mark(distinctFences && fencesRise)}: all distinct, rising for every worker`)
  console.log(`workers                ${mark(badExits.length === 0)}: ${WORKERS - 1} exited cleanly, worker ${victim?.worker ?? '?'} was SIGKILLed`)
  console.log(`left behind            ${mark(status.active === 0 && leftovers.length === 0)}: ${status.active} held, ${leftovers.length} stale files (the killed worker's record was reclaimed)`)
  console.log(`result                 ${ok ? 'PASS' : 'FAIL'}`)
  console.log('\nnext: `npx proclease run --key build --limit 2 -- <command>`; see README.md for the API and recipes.')
  process.exitCode = ok ? 0 : 1
} finally {
  await cleanup()
}
