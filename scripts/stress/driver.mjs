// The chaos driver: starts N workers, then, from a seeded schedule, SIGKILLs them (at random
// moments, while holding, and mid-claim through the beforePublish trap), SIGSTOPs and later
// SIGCONTs them (at random, holders, and waiters that hold a queue place), lowers and raises limits, deletes the lock root, and starts replacements. At
// the end it stops everyone, waits (bounded) for every worker to finish its loop, snapshots
// leftovers, runs a final sweep, snapshots again, and hands the logs to the independent checker.
//
// With `store: 'postgres'` the workers hold their leases in a PostgreSQL store instead: the
// driver starts its own throwaway cluster (scripts/pg/cluster.mjs), migrates a schema (with a
// test-only faulty claim function when `fault` names one: negative controls), and its chaos is
// SIGKILL and SIGSTOP of workers (a holder stopped past its TTL loses its hold), server restarts
// (holders' sessions die: `connection_lost`) and limit changes; traps and lock-root deletions do
// not apply. Leftovers are the store's rows; the final clean-up claims each key once (which
// reclaims what no witness vouches for, after watching it for a TTL) and sweeps.
//
// Every driver action is logged to driver.jsonl with the shared monotonic clock (µs), BEFORE it
// takes effect where that matters (kill, limit change after the control file is replaced).
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import * as pgCluster from '../pg/cluster.mjs'
import { checkRun, loadRun } from './check.mjs'
import { deriveSeed, rng } from './prng.mjs'

const here = dirname(fileURLToPath(import.meta.url))
export const PACKAGE_ROOT = resolve(here, '..', '..')
export const DEFAULT_INTERNAL = join(PACKAGE_ROOT, 'dist', 'internal.js')
/** The store a run uses, and its schema in PostgreSQL. */
export const STORES = ['file', 'postgres']
const PG_SCHEMA = 'stress'
const WORKER = join(here, 'worker.mjs')

/** Key names with the characters a real user would put in them. */
const KEY_NAMES = ['alpha', 'Beta/with slash', 'gamma:λ key', 'Delta.Δ', 'eps ilon', 'zeta#7', 'eta\\back', 'theta|pipe']

/** Relative weights of the chaos actions per tick. */
export const DEFAULT_WEIGHTS = {
  idle: 24,
  killRandom: 8,
  killHolder: 8,
  stopHolder: 8,
  stopRandom: 3,
  trap: 10,
  limit: 10,
  rmroot: 2,
  restart: 0,
  // Pauses a waiter that holds a queue place: a fair engine must keep everyone behind it waiting.
  stopWaiter: 3,
}

/**
 * The chaos of a PostgreSQL run: no traps (the beforePublish trap is the file store's) and no
 * lock-root deletions; server restarts instead (at most one per `restartGapMs`).
 */
export const PG_WEIGHTS = { ...DEFAULT_WEIGHTS, trap: 0, rmroot: 0, restart: 3 }

const now = () => Number(process.hrtime.bigint() / 1000n)

/** The share of acquires made with `fair: true` (the default option); the rest barge. */
export const DEFAULT_FAIR_SHARE = 0.8

/** The command that reproduces a run's schedule. */
export function reproduceCommand(o) {
  const parts = ['npm run stress --', `--procs ${o.procs}`, `--seconds ${o.seconds}`, `--limit ${o.limit}`, `--keys ${o.keys}`, `--seed ${o.seed}`]
  if (o.store === 'postgres') parts.push('--store postgres', `--ttl-ms ${o.ttlMs}`)
  if (o.fault) parts.push(`--fault ${o.fault}`)
  if (o.fairShare !== undefined && o.fairShare !== DEFAULT_FAIR_SHARE) parts.push(`--fair-share ${o.fairShare}`)
  const m = o.minWork
  if (m?.grants) parts.push(`--min-grants ${m.grants}`)
  if (m?.kills) parts.push(`--min-kills ${m.kills}`)
  if (m?.limitChanges) parts.push(`--min-limit-changes ${m.limitChanges}`)
  if (m?.restarts) parts.push(`--min-restarts ${m.restarts}`)
  if (m && o.maxSeconds) parts.push(`--max-seconds ${o.maxSeconds}`)
  return parts.join(' ')
}

function listLeftovers(root) {
  const out = []
  let names
  try {
    names = fs.readdirSync(root)
  } catch (err) {
    if (err.code === 'ENOENT') return out
    throw err
  }
  for (const name of names) {
    const p = join(root, name)
    const st = fs.lstatSync(p)
    if (!name.startsWith('k-') || !st.isDirectory()) {
      out.push({ path: name, kind: 'other' })
      continue
    }
    for (const n of fs.readdirSync(p)) {
      if (n === 'gate' || n === 'key') continue
      // slot: a record; place: a waiter's place in the key's queue (a record too); notice: a takeover
      // notice of a holder reclaimed after its death, waiting for the key's next grant.
      const kind = /^slot-\d+$/.test(n) ? 'slot' : /^wait-\d+$/.test(n) ? 'place' : /^notice-\d+$/.test(n) ? 'notice' : /^tmp-[0-9a-f]{32}$/.test(n) ? 'tmp' : 'other'
      const ent = { path: `${name}/${n}`, kind }
      if (ent.kind === 'slot' || ent.kind === 'place') {
        try {
          ent.pid = JSON.parse(fs.readFileSync(join(p, n), 'utf8')).pid
        } catch {
          ent.pid = null
        }
      }
      out.push(ent)
    }
  }
  return out
}

/**
 * Copies the built engine (dist/internal.js and the addon) into the run directory, so a rebuild
 * of dist/ or build/ by someone else during the run cannot break workers that start later. The
 * copy keeps the package layout the binding loader expects (dist/ one level below the root).
 */
function snapshotEngine(internal, runDir) {
  const srcRoot = resolve(dirname(internal), '..')
  const pkg = join(runDir, 'engine')
  fs.mkdirSync(join(pkg, 'dist'), { recursive: true })
  fs.copyFileSync(internal, join(pkg, 'dist', 'internal.js'))
  // The public PostgreSQL entry (postgresStore) for --store postgres workers.
  const postgres = join(dirname(internal), 'postgres.js')
  if (fs.existsSync(postgres)) fs.copyFileSync(postgres, join(pkg, 'dist', 'postgres.js'))
  fs.writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'proclease-stress-snapshot', type: 'module' }))
  fs.symlinkSync(join(srcRoot, 'node_modules'), join(pkg, 'node_modules'))
  for (const sub of ['build/Release', 'prebuilds']) {
    const from = join(srcRoot, sub)
    if (fs.existsSync(from)) {
      fs.cpSync(from, join(pkg, sub), { recursive: true, filter: (f) => fs.statSync(f).isDirectory() || f.endsWith('.node') })
    }
  }
  return join(pkg, 'dist', 'internal.js')
}

/**
 * Counts the grants logged so far, reading only what the worker logs gained since the last call
 * (a grant line is written whole by one writeSync, but a read may end inside a later line).
 */
function grantCounter(runDir) {
  const seen = new Map() // file -> { offset, tail }
  let grants = 0
  return () => {
    for (const name of fs.readdirSync(runDir)) {
      if (!/^w-\d+\.jsonl$/.test(name)) continue
      const st = seen.get(name) ?? { offset: 0, tail: '' }
      seen.set(name, st)
      const fd = fs.openSync(join(runDir, name), 'r')
      try {
        const size = fs.fstatSync(fd).size
        if (size <= st.offset) continue
        const buf = Buffer.alloc(size - st.offset)
        const n = fs.readSync(fd, buf, 0, buf.length, st.offset)
        st.offset += n
        const text = st.tail + buf.toString('utf8', 0, n)
        const cut = text.lastIndexOf('\n') + 1
        st.tail = text.slice(cut)
        for (const line of text.slice(0, cut).split('\n')) if (line.startsWith('{"ev":"grant"')) grants++
      } finally {
        fs.closeSync(fd)
      }
    }
    return grants
  }
}

/**
 * Runs one chaos run and checks it. Options: procs, seconds, limit, keys, seed, fault,
 * stopTimeoutMs, runDir, internal (path of dist/internal.js), weights, tickMs [lo, hi],
 * waitChoices, trapStallMs, log (progress printer);
 * fairShare (share of acquires made with fair: true; default 0.8) and maxWeight
 * (cap on the weights workers ask for, 1..limit, mostly 1; default none);
 * minWork { grants, kills, limitChanges } and maxSeconds: a run goes on past `seconds`, up to
 * maxSeconds, until it did that much (a loaded machine does less per second; a run that did
 * little proves little), and the summary says whether it got there;
 * rally { at: 'afterScan' | 'holding', size, opener?: 'hidden' } and rallyWaitMs: keep a rally
 * open (see worker.mjs), a forced interleaving for negative controls;
 * check: the checker (checkRun; tests of the negative controls pass a blind one);
 * store: 'file' (default) or 'postgres', with ttlMs (the store's TTL, default 2000) and
 * restartGapMs (least time between two server restarts, default 4000); for 'postgres', `fault`
 * names a test-only faulty claim function (ClaimFault in lib/lease/postgres/schema.ts).
 */
export async function runStress(options = {}) {
  const o = {
    store: 'file',
    ttlMs: 2000,
    restartGapMs: 4000,
    procs: 6,
    seconds: 30,
    limit: 2,
    keys: 2,
    seed: (Math.random() * 2 ** 32) >>> 0,
    fault: null,
    stopTimeoutMs: 30_000,
    internal: DEFAULT_INTERNAL,
    weights: DEFAULT_WEIGHTS,
    tickMs: [40, 250],
    waitChoices: [100, 400, 1500, 3000],
    trapStallMs: 250,
    hiddenEvery: 3,
    minWork: null,
    maxSeconds: null,
    rally: null,
    rallyWaitMs: 2000,
    fairShare: undefined,
    maxWeight: undefined,
    check: checkRun,
    log: () => {},
    ...options,
  }
  if (!STORES.includes(o.store)) throw new Error(`unknown store ${o.store} (known: ${STORES.join(', ')})`)
  if (options.weights === undefined && o.store === 'postgres') o.weights = PG_WEIGHTS
  // The PostgreSQL store has neither weighted holds (store_unsupported) nor a queue yet: its
  // workers ask for weight 1 and barge (fair: false), so the checks that run there stay meaningful.
  if (o.fairShare === undefined) o.fairShare = DEFAULT_FAIR_SHARE
  if (o.maxWeight === undefined) o.maxWeight = null
  if (!(o.fairShare >= 0 && o.fairShare <= 1)) throw new Error(`fairShare must be in [0, 1], not ${o.fairShare}`)
  if (!fs.existsSync(o.internal)) {
    throw new Error(`${o.internal} is missing: build the package first (npm run build)`)
  }
  if (o.store !== 'postgres') return chaos(o, null)
  if (!fs.existsSync(join(dirname(o.internal), 'postgres.js'))) throw new Error(`${join(dirname(o.internal), 'postgres.js')} is missing: build the package first`)
  const cluster = await pgCluster.start()
  try {
    await prepareSchema(o.internal, cluster.connectionString, o.fault)
    return await chaos(o, cluster)
  } finally {
    await pgCluster.stop(cluster, { mode: 'immediate' })
  }
}

/** A client of the run's cluster, closed after fn. */
async function withClient(connectionString, fn) {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString })
  client.on('error', () => {
    // A restart kills this session too; its next query reports that.
  })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** The run's schema, migrated, with a faulty claim function when a fault is named. */
async function prepareSchema(internal, connectionString, fault) {
  const { functionsSql, migrate } = await import(pathToFileURL(internal).href)
  await withClient(connectionString, async (client) => {
    // The throwaway cluster commits asynchronously: an immediate restart early in the run would
    // otherwise forget the schema, or put the correct functions back in place of a faulty one.
    await client.query(`SET synchronous_commit = 'local'`)
    await migrate(client, PG_SCHEMA)
    if (fault) await client.query(functionsSql(PG_SCHEMA, [fault]))
  })
}

/** The store's rows, as leftover entries (a row of a key is its slot). */
function pgRows(connectionString) {
  return withClient(connectionString, async (client) => {
    const res = await client.query(`SELECT key, slot, holder_pid FROM "${PG_SCHEMA}".holds ORDER BY key, slot`)
    return res.rows.map((r) => ({ path: `${r.key}/slot-${r.slot}`, kind: 'slot', pid: r.holder_pid }))
  })
}

/**
 * The final clean-up of a PostgreSQL run: one claim per key (limit 1) takes what no witness
 * vouches for - holds of killed workers through their dead sessions, holds from before a restart
 * after watching them unrenewed for a TTL - then a sweep.
 */
async function pgCleanUp(engine, connectionString, keys, ttlMs) {
  const { acquireWith, normalizeOptions } = await import(pathToFileURL(engine).href)
  const { postgresStore } = await import(pathToFileURL(join(dirname(engine), 'postgres.js')).href)
  const store = postgresStore({ connectionString, schema: PG_SCHEMA, ttlMs })
  try {
    for (const key of keys) {
      const lease = await acquireWith(store, normalizeOptions({ key, limit: 1, store, waitMs: 5 * ttlMs + 5000 }), 'wait')
      await lease.release()
      await store.sweep(key, false, false)
    }
  } finally {
    await store.close()
  }
}

async function chaos(o, cluster) {
  const runDir = o.runDir ?? fs.mkdtempSync(join(tmpdir(), 'proclease-stress-'))
  fs.mkdirSync(runDir, { recursive: true })
  const root = join(runDir, 'root')
  o.internal = snapshotEngine(o.internal, runDir)
  const keys = Array.from({ length: o.keys }, (_, i) => KEY_NAMES[i] ?? `key-${i}`)
  // The tick schedule (which action, with which parameters) comes from `rd` alone, so a seed
  // replays the same sequence of decisions; draws made from asynchronous events (when a killed
  // worker is replaced) come from `rr`, so their timing cannot shift that sequence.
  const rd = rng(deriveSeed(o.seed, 'driver'))
  const rr = rng(deriveSeed(o.seed, 'replacements'))
  const driverFd = fs.openSync(join(runDir, 'driver.jsonl'), 'a', 0o600)
  const emit = (ev) => fs.writeSync(driverFd, JSON.stringify(ev) + '\n')
  const startT = now()
  const command = reproduceCommand(o)
  fs.writeFileSync(
    join(runDir, 'meta.json'),
    JSON.stringify(
      {
        seed: o.seed,
        procs: o.procs,
        seconds: o.seconds,
        keys,
        limit: o.limit,
        fault: o.fault,
        stopTimeoutMs: o.stopTimeoutMs,
        startT,
        root,
        command,
        minWork: o.minWork,
        rally: o.rally,
        store: o.store,
        fairShare: o.fairShare,
        maxWeight: o.maxWeight,
        ...(cluster ? { ttlMs: o.ttlMs, schema: PG_SCHEMA } : {}),
      },
      null,
      2,
    ),
  )

  // ---- control file: limits, trap, stop ---------------------------------------------------
  const control = { limits: Object.fromEntries(keys.map((k) => [k, o.limit])), stop: false, traps: {}, rally: null }
  const controlPath = join(runDir, 'control.json')
  let controlTmp = 0
  const writeControl = () => {
    const tmp = `${controlPath}.${controlTmp++}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(control))
    fs.renameSync(tmp, controlPath)
  }
  writeControl()

  // ---- workers ------------------------------------------------------------------------------
  const workers = new Map()
  let nextId = 0
  let stopping = false
  const traps = new Map() // worker id -> { seq, kill }
  let trapSeq = 0

  const lastEvent = (id) => {
    let fd
    try {
      fd = fs.openSync(join(runDir, `w-${id}.jsonl`), 'r')
    } catch {
      return null
    }
    try {
      const size = fs.fstatSync(fd).size
      const len = Math.min(size, 2048)
      const buf = Buffer.alloc(len)
      fs.readSync(fd, buf, 0, len, size - len)
      const lines = buf.toString('utf8').split('\n').filter((l) => l.length > 0)
      try {
        return JSON.parse(lines.at(-1) ?? 'null')
      } catch {
        return null
      }
    } finally {
      fs.closeSync(fd)
    }
  }

  const spawnWorker = () => {
    const id = nextId++
    const cfg = {
      id,
      seed: o.seed,
      root,
      runDir,
      keys,
      fault: o.fault,
      internal: o.internal,
      waitChoices: o.waitChoices,
      trapStallMs: o.trapStallMs,
      hiddenEvery: o.hiddenEvery,
      rallyWaitMs: o.rallyWaitMs,
      fairShare: o.fairShare,
      maxWeight: o.maxWeight,
      store: o.store,
      ...(cluster ? { connectionString: cluster.connectionString, schema: PG_SCHEMA, ttlMs: o.ttlMs } : {}),
    }
    const errFd = fs.openSync(join(runDir, `w-${id}.stderr`), 'a', 0o600)
    const proc = spawn(process.execPath, [WORKER, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', errFd] })
    fs.closeSync(errFd)
    const w = { id, proc, pid: proc.pid, alive: true, stopped: false, killed: false }
    w.exited = new Promise((resolveExit) => {
      proc.once('exit', (code, signal) => {
        w.alive = false
        emit({ ev: 'exit', w: id, pid: w.pid, code, signal, t: now(), expected: w.killed })
        if (!w.killed && !stopping) {
          o.log(`worker ${id} exited unexpectedly (code ${code}, signal ${signal})`)
          scheduleReplacement(rr.range(20, 300))
        }
        resolveExit()
      })
    })
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const m = /^trap (\d+) (\d+)$/.exec(line)
      if (!m) return
      const trap = traps.get(Number(m[1]))
      if (!trap || trap.seq !== Number(m[2])) return
      traps.delete(Number(m[1]))
      emit({ ev: 'trap', w: id, t: now(), kill: trap.kill })
      if (trap.kill && w.alive && !stopping) kill(w, 'mid-claim')
    })
    workers.set(id, w)
    emit({ ev: 'spawn', w: id, pid: proc.pid, t: now() })
    return w
  }

  const scheduleReplacement = (ms) => {
    setTimeout(() => {
      if (!stopping) spawnWorker()
    }, ms)
  }

  const kill = (w, why) => {
    if (!w.alive || w.killed) return
    w.killed = true
    if (why !== 'hung') work.kills++
    emit({ ev: 'kill', w: w.id, pid: w.pid, t: now(), why })
    w.proc.kill('SIGKILL')
    if (why !== 'hung') scheduleReplacement(rr.range(20, 300))
  }

  const live = () => [...workers.values()].filter((w) => w.alive && !w.killed)
  // A holder's last line is its grant (or, on a networked store, its latest `held`).
  const holders = () => live().filter((w) => ['grant', 'held'].includes(lastEvent(w.id)?.ev))
  // A queued waiter's last line is its first busy answer (nothing is logged until it ends).
  const waiters = () => live().filter((w) => lastEvent(w.id)?.ev === 'queued')

  const stopFor = (w, ms) => {
    if (w.stopped) return
    w.stopped = true
    emit({ ev: 'stop', w: w.id, t: now(), ms })
    w.proc.kill('SIGSTOP')
    setTimeout(() => cont(w), ms)
  }
  const cont = (w) => {
    if (!w.stopped) return
    w.stopped = false
    if (w.alive && !w.killed) {
      w.proc.kill('SIGCONT')
      emit({ ev: 'cont', w: w.id, t: now() })
    }
  }

  for (let i = 0; i < o.procs; i++) spawnWorker()

  // ---- rallies (negative controls): one open at a time, the next once it closed -------------
  let rallySeq = 0
  const rallyClosed = () => {
    try {
      return fs.readdirSync(join(runDir, `rally-${rallySeq}`)).some((n) => n.startsWith('closed-'))
    } catch (err) {
      if (err.code === 'ENOENT') return true
      throw err
    }
  }
  const openRally = () => {
    if (!o.rally || (control.rally !== null && !rallyClosed())) return
    rallySeq++
    fs.mkdirSync(join(runDir, `rally-${rallySeq}`))
    control.rally = { seq: rallySeq, ...o.rally }
    writeControl()
    emit({ ev: 'rally', seq: rallySeq, t: now(), ...o.rally })
  }

  // ---- how much work was done (minWork) -------------------------------------------------------
  const countGrants = grantCounter(runDir)
  const work = { kills: 0, limitChanges: 0, restarts: 0 }
  const workDone = () => {
    const m = o.minWork
    if (!m) return true
    if ((m.kills ?? 0) > work.kills || (m.limitChanges ?? 0) > work.limitChanges || (m.restarts ?? 0) > work.restarts) return false
    return (m.grants ?? 0) <= countGrants()
  }

  // ---- chaos --------------------------------------------------------------------------------
  const maxStopped = Math.max(1, Math.floor(o.procs / 3))
  const endAt = performance.now() + o.seconds * 1000
  const hardEndAt = performance.now() + Math.max(o.seconds, o.maxSeconds ?? o.seconds) * 1000
  let lastRmroot = -Infinity
  let lastRestart = -Infinity
  let ticks = 0
  let enoughWork = false
  for (;;) {
    const t = performance.now()
    if (t >= hardEndAt) break
    if (t >= endAt && (enoughWork = workDone())) break
    // Every tick draws the same five numbers whatever the state, so the decision sequence of a
    // seed does not shift when a target happens to be missing.
    const pauseMs = rd.range(o.tickMs[0], o.tickMs[1])
    const action = rd.weighted(o.weights)
    const uTarget = rd.next()
    const uParam = rd.next()
    const uKey = rd.next()
    const among = (items) => items[Math.floor(uTarget * items.length)]
    await delay(pauseMs)
    ticks++
    openRally()
    const pool = live()
    if (pool.length === 0) continue
    switch (action) {
      case 'killRandom':
        kill(among(pool), 'random')
        break
      case 'killHolder': {
        const hs = holders()
        if (hs.length > 0) kill(among(hs), 'holder')
        break
      }
      case 'stopHolder':
      case 'stopWaiter':
      case 'stopRandom': {
        const ms = 100 + uParam * 2900
        const candidates = (action === 'stopHolder' ? holders() : action === 'stopWaiter' ? waiters() : pool).filter((w) => !w.stopped)
        if (candidates.length > 0 && pool.filter((w) => w.stopped).length < maxStopped) stopFor(among(candidates), ms)
        break
      }
      case 'trap': {
        const w = among(pool)
        const trap = { seq: ++trapSeq, kill: uParam < 0.8 }
        traps.set(w.id, trap)
        control.traps[w.id] = trap.seq
        writeControl()
        emit({ ev: 'arm', w: w.id, t: now(), seq: trap.seq })
        break
      }
      case 'limit': {
        const key = keys[Math.floor(uKey * keys.length)]
        let value = 1 + Math.floor(uParam * (o.limit + 1))
        if (value === control.limits[key]) value = value === 1 ? 2 : value - 1
        control.limits[key] = value
        // t0 before the control file is replaced, t after: a worker whose acquire began after t
        // read the new value; one granted before t0 used an older one.
        const t0 = now()
        writeControl()
        emit({ ev: 'limit', key, value, t0, t: now() })
        work.limitChanges++
        break
      }
      case 'rmroot': {
        if (performance.now() - lastRmroot < 2000) break
        lastRmroot = performance.now()
        const t0 = now()
        let error = null
        try {
          fs.rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 2 })
        } catch (err) {
          error = err.code ?? String(err)
        }
        emit({ ev: 'rmroot', t0, t1: now(), error })
        break
      }
      case 'restart': {
        // Holders' sessions die with the server: their signals fire (connection_lost), and their
        // holds, no longer witnessed by a session of this server incarnation, expire after a TTL.
        if (!cluster || performance.now() - lastRestart < o.restartGapMs) break
        const mode = uParam < 0.5 ? 'fast' : 'immediate'
        const t0 = now()
        let error = null
        try {
          await pgCluster.restart(cluster, { mode })
        } catch (err) {
          error = String(err?.message ?? err)
        }
        lastRestart = performance.now()
        emit({ ev: 'restart', t0, t1: now(), mode, error })
        work.restarts++
        break
      }
    }
    if (ticks % 50 === 0) o.log(`  t=${Math.round((now() - startT) / 1e6)}s workers=${live().length}`)
  }

  // ---- stop ---------------------------------------------------------------------------------
  if (!enoughWork) enoughWork = workDone()
  emit({ ev: 'work', t: now(), minWork: o.minWork, done: enoughWork, grants: countGrants(), ...work })
  stopping = true
  const stopT = now()
  emit({ ev: 'stopAll', t: stopT })
  for (const w of workers.values()) cont(w)
  control.stop = true
  control.traps = {}
  control.rally = null
  writeControl()
  const all = [...workers.values()]
  await Promise.all(
    all.map(async (w) => {
      if (!w.alive) return
      const timer = delay(o.stopTimeoutMs, null, { ref: false }).then(() => 'timeout')
      const outcome = await Promise.race([w.exited.then(() => 'exited'), timer])
      if (outcome === 'timeout' && w.alive) {
        emit({ ev: 'hung', w: w.id, pid: w.pid, t: now(), last: lastEvent(w.id) })
        kill(w, 'hung')
        await w.exited
      }
    }),
  )
  // Replacements scheduled just before the stop may not have been started; nothing is pending.
  await delay(350)
  for (const w of workers.values()) if (w.alive) await w.exited

  // ---- leftovers and the final sweep -------------------------------------------------------
  let before
  let after
  let sweepError = null
  if (cluster) {
    before = await pgRows(cluster.connectionString)
    try {
      await pgCleanUp(o.internal, cluster.connectionString, keys, o.ttlMs)
    } catch (err) {
      sweepError = String(err?.stack ?? err)
    }
    after = await pgRows(cluster.connectionString)
  } else {
    before = listLeftovers(root)
    try {
      const { FileStore } = await import(pathToFileURL(o.internal).href)
      const store = new FileStore({ root })
      for (const key of keys) await store.sweep(key, false, false)
    } catch (err) {
      sweepError = String(err?.stack ?? err)
    }
    after = listLeftovers(root)
  }
  fs.writeFileSync(join(runDir, 'leftovers.json'), JSON.stringify({ before, after, sweepError }, null, 2))
  emit({ ev: 'end', t: now() })
  fs.closeSync(driverFd)

  const result = o.check(loadRun(runDir))
  if (sweepError) {
    result.ok = false
    result.violations.push({ kind: 'error', phase: 'final sweep', message: sweepError })
    result.summary.violationCounts.error = (result.summary.violationCounts.error ?? 0) + 1
  }
  fs.writeFileSync(join(runDir, 'report.json'), JSON.stringify(result, null, 2))
  return { ...result, runDir, command, seed: o.seed }
}
