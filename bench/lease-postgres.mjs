// `npm run bench:lease -- --store postgres`: the PostgreSQL store against redis-semaphore on a
// local redis-server, side by side in one run on one machine. Starts its own throwaway PostgreSQL
// cluster (scripts/pg/cluster.mjs, on disk under the temp directory) and redis-server (unix
// socket, bench/redis-server.mjs); both go away when the run ends, however it ends.
//
// Measures, for each: uncontended acquire+release per second (and, at the end, the same with
// per-commit fsync on both servers), where the claim's time goes on the server, hand-off between
// 4 processes (and 2) on limit 1, recovery after SIGKILL of a holder, a waiter's CPU, and rounds of a
// skewed-clock client against a live holder (double holds counted).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { Redis } from 'ioredis'
import { Semaphore } from 'redis-semaphore'
import { acquireLease } from '../dist/index.js'
import { postgresStore } from '../dist/postgres.js'
import { start as startCluster, stop as stopCluster } from '../scripts/pg/cluster.mjs'
import { fmt, handoff, idleCpu, median, pct, printTable, sleep, start } from './lease-common.mjs'
import { redisServerVersion, startRedis } from './redis-server.mjs'

const PG = 'postgres'
const RS = 'redis-semaphore'
/** redis-semaphore's default retry interval: how often its waiters poll. */
const REDIS_RETRY_MS = 10
/** How long the parent waits for a worker to be blocked on a holder's session lock. */
const BLOCKED_LIMIT_MS = 30_000
/** The durable pass's server: every commit flushed to disk, as in production. */
const DURABLE = { fsync: 'on', full_page_writes: 'on', synchronous_commit: 'on' }

export async function runPostgres(o) {
  // Check for redis-server before starting anything: a missing one is the commonest failure.
  redisServerVersion()
  const load0 = loadavg()
  process.stderr.write('starting PostgreSQL and redis-server…\n')
  // The test suite's throwaway cluster: tmpfs, fsync off (the durable pass has its own cluster).
  const cluster = await startCluster()
  const redisServer = await startRedis()
  const admin = new pg.Client({ connectionString: cluster.connectionString })
  await admin.connect()
  const redisAdmin = new Redis({ path: redisServer.socket })
  let keySeq = 0
  const key = (what) => `bench-${what}-${keySeq++}`
  const pgSpec = (what, extra = {}) => JSON.stringify({ connectionString: cluster.connectionString, ttlMs: o.ttlMs, key: key(what), ...extra })
  const redisSpec = (what, extra = {}) =>
    JSON.stringify({
      socket: redisServer.socket,
      key: key(what),
      lockTimeout: o.redisLockTimeout,
      refreshInterval: Math.round(o.redisLockTimeout / 3),
      retryInterval: REDIS_RETRY_MS,
      ...extra,
    })
  const spec = (impl, what, extra) => (impl === PG ? pgSpec(what, extra) : redisSpec(what, extra))

  try {
    const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version
    await prepare(admin, cluster.connectionString)

    const r = { [PG]: {}, [RS]: {} }
    for (const impl of [PG, RS]) {
      process.stderr.write(`measuring ${impl}…\n`)
      r[impl].ops = await uncontended(impl, cluster.connectionString, admin)
      r[impl].handoff = await handoff(impl, spec(impl, 'handoff'), o.rounds)
      // One waiter: no herd of waiters woken by the same release.
      r[impl].handoff2 = await handoff(impl, spec(impl, 'handoff'), o.rounds, 2)
      r[impl].recovery = await recovery(impl)
      r[impl].cpu = await idleCpu(impl, spec(impl, 'cpu'))
    }
    const rtt = await selectOneRoundTrip()
    process.stderr.write('skewed clocks…\n')
    const skew = {
      [PG]: await skewRounds(PG, [
        { wallMs: 20_000, monoMs: 86_400_000 },
        { wallMs: 20_000, monoMs: -86_400_000 },
      ]),
      [RS]: await skewRounds(RS, [{ wallMs: 20_000, monoMs: 0 }]),
    }
    if (o.durable) {
      process.stderr.write('durable pass (fsync per commit)…\n')
      const durable = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'proclease-bench-pg-')), settings: DURABLE })
      const dAdmin = new pg.Client({ connectionString: durable.connectionString })
      try {
        await dAdmin.connect()
        await prepare(dAdmin, durable.connectionString)
        r[PG].durableOps = await uncontended(PG, durable.connectionString, dAdmin)
      } finally {
        await dAdmin.end().catch(() => undefined)
        await stopCluster(durable, { mode: 'immediate' })
      }
      await redisAdmin.config('SET', 'appendonly', 'yes')
      await redisAdmin.config('SET', 'appendfsync', 'always')
      r[RS].durableOps = await uncontended(RS)
    }
    report(r, rtt, skew, pgVersion, load0)
    if (o.json) {
      const load1 = loadavg()
      writeFileSync(o.json, `${JSON.stringify({ results: r, rtt, skew, pgVersion, load: [load0, load1], options: o, argv: process.argv.slice(2) }, null, 1)}\n`)
    }
  } finally {
    redisAdmin.disconnect()
    await admin.end().catch(() => undefined)
    await redisServer.stop()
    await stopCluster(cluster, { mode: 'immediate' })
  }

  // ---- measurements ----------------------------------------------------------------------

  /** Schema in place, and function timing on for every later session: the claim's server time. */
  async function prepare(client, connectionString) {
    await client.query(`ALTER DATABASE postgres SET track_functions = 'pl'`)
    const store = postgresStore({ connectionString })
    await store.listKeys()
    await store.close()
  }

  /** Acquire+release on one key in this process for o.seconds; per-op latencies and server time. */
  async function uncontended(impl, connectionString, client) {
    const k = key('uncontended')
    const acq = []
    const rel = []
    let n = 0
    if (impl === PG) {
      const before = await functionStats(client)
      const store = postgresStore({ connectionString, ttlMs: o.ttlMs })
      await (await acquireLease({ key: k, limit: 1, store })).release() // connect and warm up
      const until = performance.now() + o.seconds * 1000
      while (performance.now() < until) {
        const t0 = performance.now()
        const lease = await acquireLease({ key: k, limit: 1, store })
        const t1 = performance.now()
        await lease.release()
        rel.push(performance.now() - t1)
        acq.push(t1 - t0)
        n++
      }
      await store.close()
      const after = await functionStats(client, before.claim.calls + n + 1)
      return { perSecond: n / o.seconds, acq: median(acq), rel: median(rel), server: diffStats(before, after) }
    }
    const rc = new Redis({ path: redisServer.socket })
    const sem = () => new Semaphore(rc, k, 1, { lockTimeout: o.redisLockTimeout, refreshInterval: Math.round(o.redisLockTimeout / 3), retryInterval: REDIS_RETRY_MS })
    const warm = sem()
    await warm.acquire()
    await warm.release()
    await redisAdmin.config('RESETSTAT')
    const until = performance.now() + o.seconds * 1000
    while (performance.now() < until) {
      const s = sem()
      const t0 = performance.now()
      await s.acquire()
      const t1 = performance.now()
      await s.release()
      rel.push(performance.now() - t1)
      acq.push(t1 - t0)
      n++
    }
    const server = commandStats(await redisAdmin.info('commandstats'))
    rc.disconnect()
    return { perSecond: n / o.seconds, acq: median(acq), rel: median(rel), server }
  }

  /**
   * pg_stat_user_functions for claim and release. A backend reports its counters at exit at the
   * latest; with `atLeast`, waits until the claim count has reached it (the store was closed).
   */
  async function functionStats(client, atLeast = 0) {
    const deadline = Date.now() + 10_000
    for (;;) {
      await client.query('SELECT pg_stat_clear_snapshot()')
      const rows = (
        await client.query(
          `SELECT funcname, calls::float8 AS calls, total_time, self_time FROM pg_stat_user_functions
           WHERE schemaname = 'proclease' AND funcname IN ('claim', 'release')`,
        )
      ).rows
      const get = (name) => rows.find((x) => x.funcname === name) ?? { calls: 0, total_time: 0, self_time: 0 }
      const out = { claim: get('claim'), release: get('release') }
      if (out.claim.calls >= atLeast) return out
      if (Date.now() > deadline) throw new Error(`pg_stat_user_functions: ${out.claim.calls} claims reported, ${atLeast} expected`)
      await sleep(20)
    }
  }

  function diffStats(a, b) {
    const per = (f) => {
      const calls = b[f].calls - a[f].calls
      return { calls, ms: (b[f].total_time - a[f].total_time) / calls }
    }
    return { claim: per('claim'), release: per('release') }
  }

  /** Redis INFO commandstats: microseconds per call of each command the loop used. */
  function commandStats(info) {
    const out = {}
    for (const line of info.split('\n')) {
      const m = /^cmdstat_(\w+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(line.trim())
      if (m && m[1] !== 'config' && m[1] !== 'info') out[m[1]] = { calls: Number(m[2]), ms: Number(m[4]) / 1000 }
    }
    return out
  }

  async function selectOneRoundTrip() {
    const lat = []
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now()
      await admin.query('SELECT 1')
      lat.push(performance.now() - t0)
    }
    const rlat = []
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now()
      await redisAdmin.ping()
      rlat.push(performance.now() - t0)
    }
    return { pg: median(lat), redis: median(rlat) }
  }

  /** Waits until some session is blocked on an advisory lock: a waiter blocking on a holder's session lock. */
  async function blockedOnAdvisoryLock() {
    const deadline = Date.now() + BLOCKED_LIMIT_MS
    for (;;) {
      const n = (await admin.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).rows[0].n
      if (n > 0) return
      if (Date.now() > deadline) throw new Error('no waiter blocked on the holder session lock')
      await sleep(5)
    }
  }

  /** Holder SIGKILLed while a waiter waits; the time from the kill to the waiter's grant. */
  async function recovery(impl) {
    const out = []
    for (let i = 0; i < o.recoveries; i++) {
      const target = spec(impl, 'recovery')
      const holder = start('holder', impl, target)
      await holder.next('held')
      const waiter = start('waiter', impl, target)
      await waiter.next('waiting')
      // The PostgreSQL waiter is in its idle wait once the server shows it blocked on the holder's
      // session lock; a redis-semaphore waiter polls from its first attempt: let it settle the same.
      if (impl === PG) await blockedOnAdvisoryLock()
      await sleep(300)
      const killedAt = process.hrtime.bigint()
      holder.child.kill('SIGKILL')
      const grant = await waiter.next('grant')
      out.push(Number(BigInt(grant.t) - killedAt) / 1e6)
      await Promise.all([holder.exited, waiter.exited])
    }
    return { median: median(out), p99: pct(out, 0.99), max: Math.max(...out), n: out.length }
  }

  /**
   * One holder process holds o.skewKeys keys; a process under a skewed clock wants all of them at
   * once, for 3 TTLs (3 lockTimeouts) each. Every grant it gets is kept, and the holder is asked
   * at once whether it still believes it holds that key: yes is a double hold.
   */
  async function skewRounds(impl, skews) {
    const results = []
    for (const skew of skews) {
      const ttl = impl === PG ? o.skewTtlMs : o.redisLockTimeout
      const base = impl === PG ? { ttlMs: o.skewTtlMs } : {}
      const holderSpec = spec(impl, 'skew', base)
      const keyPrefix = JSON.parse(holderSpec).key
      const holder = start('skew-holder', impl, holderSpec, o.skewKeys)
      await holder.next('held')
      const contenderSpec = JSON.stringify({ ...JSON.parse(holderSpec), key: keyPrefix, skew, waitMs: 3 * ttl })
      let doubles = 0
      let grants = 0
      let lostFirst = 0
      const checks = []
      const contender = start('skew-contender', impl, contenderSpec, o.skewKeys, (e) => {
        if (e.ev !== 'grant') return
        grants++
        holder.child.stdin.write(`check ${e.i}\n`)
        checks.push(
          holder.next('state').then((s) => {
            if (s.held) doubles++
            else lostFirst++
          }),
        )
      })
      await contender.next('done')
      await Promise.all(checks)
      for (const w of [holder, contender]) { w.child.stdin.end(); w.child.kill('SIGKILL') }
      await Promise.all([holder.exited, contender.exited])
      const holderLost = holder.events.filter((e) => e.ev === 'lost').length
      results.push({ skew, rounds: o.skewKeys, grants, doubles, lostFirst, holderLost, waitMs: 3 * ttl })
    }
    return results
  }

  // ---- report --------------------------------------------------------------------------------

  function report(r, rtt, skew, pgVersion, load0) {
    const a = r[PG]
    const b = r[RS]
    const x = (n) => `${n.toFixed(n >= 10 ? 0 : 1)}×`
    const rows = [
      ['uncontended acquire+release', `${a.ops.perSecond.toFixed(0)}/s`, `${b.ops.perSecond.toFixed(0)}/s`, `${(a.ops.perSecond / b.ops.perSecond).toFixed(2)}× throughput`],
      ['  acquire, median', fmt(a.ops.acq), fmt(b.ops.acq), ''],
      ['  release, median', fmt(a.ops.rel), fmt(b.ops.rel), ''],
    ]
    if (a.durableOps) {
      rows.push(['uncontended, fsync per commit', `${a.durableOps.perSecond.toFixed(0)}/s`, `${b.durableOps.perSecond.toFixed(0)}/s`, `${(a.durableOps.perSecond / b.durableOps.perSecond).toFixed(2)}× throughput`])
    }
    rows.push(
      ['hand-off, 4 procs, median', fmt(a.handoff.median), fmt(b.handoff.median), `${(b.handoff.median / a.handoff.median).toFixed(2)}× (>1: faster)`],
      ['hand-off, 4 procs, p99', fmt(a.handoff.p99), fmt(b.handoff.p99), `${(b.handoff.p99 / a.handoff.p99).toFixed(2)}×`],
      ['hand-off, 2 procs, median', fmt(a.handoff2.median), fmt(b.handoff2.median), `${(b.handoff2.median / a.handoff2.median).toFixed(2)}×`],
      ['recovery after SIGKILL, median', fmt(a.recovery.median), fmt(b.recovery.median), `${x(b.recovery.median / a.recovery.median)} faster`],
      ['recovery after SIGKILL, worst', fmt(a.recovery.max), fmt(b.recovery.max), `${x(b.recovery.max / a.recovery.max)} faster`],
      ['CPU of a waiter over a 2 s wait', fmt(a.cpu), fmt(b.cpu), `${(b.cpu / Math.max(a.cpu, 0.001)).toFixed(1)}× less`],
    )
    for (const [impl, col] of [[PG, 1], [RS, 2]]) {
      for (const s of skew[impl]) {
        const cells = ['', '', '', '']
        cells[0] = `skewed client (wall ${sign(s.skew.wallMs / 1000)} s${impl === PG ? `, monotonic ${sign(s.skew.monoMs / 86_400_000)} day` : ''})`
        cells[col] = `${s.doubles} double / ${s.rounds}`
        rows.push(cells)
      }
    }
    printTable(['metric', 'postgres store', 'redis-semaphore', 'ratio'], rows)

    const sc = a.ops.server.claim
    const sr = a.ops.server.release
    console.log(`\nserver-side time (uncontended loop): claim() ${fmt(sc.ms)} per call, release() ${fmt(sr.ms)} (pg_stat_user_functions, ${sc.calls} calls);`)
    console.log(`  round trips: SELECT 1 ${fmt(rtt.pg)}, redis PING ${fmt(rtt.redis)} (medians of 2000)`)
    const script = b.ops.server.evalsha ?? b.ops.server.eval
    const zrem = b.ops.server.zrem
    console.log(
      `  redis-semaphore server time (INFO commandstats): acquire script ${script ? fmt(script.ms) : '?'} per call (its commands included), ` +
        `release (ZREM) ${zrem ? fmt(zrem.ms) : '?'}`,
    )
    if (a.durableOps) {
      const dc = a.durableOps.server.claim
      console.log(`  with fsync per commit: claim() ${fmt(dc.ms)} per call (the commit's WAL flush comes after it); acquire median ${fmt(a.durableOps.acq)} vs redis-semaphore ${fmt(b.durableOps.acq)}`)
    }
    console.log(`\nrecovery: ${a.recovery.n} / ${b.recovery.n} rounds, p99 ${fmt(a.recovery.p99)} / ${fmt(b.recovery.p99)}; hand-offs measured: ${a.handoff.n} / ${b.handoff.n}`)
    for (const impl of [PG, RS]) {
      for (const s of skew[impl]) {
        console.log(
          `skew ${impl}: ${s.rounds} keys held by a live holder, each wanted for ${s.waitMs} ms by a client at wall ${sign(s.skew.wallMs / 1000)} s` +
            `${impl === PG ? `, monotonic ${sign(s.skew.monoMs / 86_400_000)} day` : ''}: ${s.grants} granted, ${s.doubles} while the holder still held, ` +
            `${s.lostFirst} after the holder knew it had lost; holder lost-lock events: ${s.holderLost}`,
        )
      }
    }
    const load1 = loadavg()
    console.log(
      `\nsettings: postgres store ttlMs ${o.ttlMs} (skew rounds: ${o.skewTtlMs}), witness 'session'; redis-semaphore Semaphore(limit 1), lockTimeout ${o.redisLockTimeout} ms, ` +
        `refreshInterval ${Math.round(o.redisLockTimeout / 3)} ms, retryInterval ${REDIS_RETRY_MS} ms`,
    )
    console.log(`servers: PostgreSQL ${pgVersion} (unix socket, tmpfs, fsync off as in the tests; the fsync pass: a second cluster on disk with fsync, full_page_writes and synchronous_commit on); ${redisServerVersion()} (unix socket, no persistence until the fsync pass: appendfsync always)`)
    console.log(`machine: ${cpus().length} cores, load average ${load0.map((l) => l.toFixed(2)).join(' ')} at start, ${load1.map((l) => l.toFixed(2)).join(' ')} at end`)
    console.log(`command: node bench/lease.mjs ${process.argv.slice(2).join(' ')}`.trimEnd())
  }
}

const sign = (n) => (n >= 0 ? `+${n}` : `${n}`)
