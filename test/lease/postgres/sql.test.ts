// The PostgreSQL store's server-side functions against a real server, with real concurrent
// connections and processes (issue 9, server half). Every safety check also runs against a
// deliberately broken variant of the functions (ClaimFault) and must catch it.
import type pg from 'pg'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  type ClaimCall,
  type ClaimResult,
  channelFor,
  claim,
  inspect,
  listKeys,
  release,
  renew,
  sweep,
} from '../../../lib/lease/postgres/calls.js'
import { type ClaimFault, MAX_FENCE, SQLSTATE } from '../../../lib/lease/postgres/schema.js'
import { Child, killAll } from '../../helpers/children.js'
import {
  AGENT,
  closeClients,
  connect,
  connectionString,
  freshSchema,
  pgBundle,
  removeBundle,
  waitBackendGone,
  waitUntilBlocked,
} from '../../helpers/pg.js'

afterEach(async () => {
  await killAll()
  await closeClients()
})
afterAll(removeBundle)

function call(key: string, limit: number, extra: Partial<ClaimCall> = {}): ClaimCall {
  return { key, limit, ttlMs: 10_000, witness: 'session', lockTimeoutMs: 10_000, ...extra }
}

function granted(r: ClaimResult): Extract<ClaimResult, { outcome: 'granted' }> {
  if (r.outcome !== 'granted') throw new Error(`expected granted, got ${JSON.stringify(r)}`)
  return r
}

function sqlstate(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

async function storedHolds(c: pg.Client, schema: string, key: string): Promise<number> {
  const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".holds WHERE key = $1`, [key])
  return r.rows[0]?.n ?? -1
}

async function backendPid(c: pg.Client): Promise<number> {
  const r = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  const pid = r.rows[0]?.pid
  if (typeof pid !== 'number') throw new Error('no backend pid')
  return pid
}

describe('bound', () => {
  // Phase 1 (deterministic): with `limit` live holders every further claim is busy. Phase 2: 8
  // clients hammer the key; an independent sweep-line over the grant/release intervals seen by
  // the clients (nested inside the true intervals) never exceeds the limit.
  async function scenario(faults: ClaimFault[]): Promise<{ phase1: string[]; peak: number; errors: unknown[] }> {
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect()))
    const admin = clients[0] as pg.Client
    const schema = await freshSchema(admin, faults)
    const key = 'bound'
    const limit = 2
    const errors: unknown[] = []
    const attempt = (c: pg.Client): Promise<ClaimResult | null> =>
      claim(c, schema, call(key, limit)).catch((err: unknown) => {
        errors.push(err)
        return null
      })
    const first = await Promise.all(clients.slice(0, limit).map(attempt))
    const rest = await Promise.all(clients.slice(limit).map(attempt))
    const phase1 = [...first, ...rest].map((r) => r?.outcome ?? 'error')
    for (const [i, r] of [...first, ...rest].entries()) {
      if (r?.outcome === 'granted') await release(clients[i] as pg.Client, schema, key, r.token, r.lock, 10_000)
    }
    let active = 0
    let peak = 0
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 40; i++) {
          let r: ClaimResult
          try {
            r = await claim(c, schema, call(key, limit))
          } catch (err) {
            errors.push(err)
            continue
          }
          if (r.outcome !== 'granted') continue
          active++
          peak = Math.max(peak, active)
          await c.query('SELECT 1') // hold across a round trip so that holds overlap
          active--
          await release(c, schema, key, r.token, r.lock, 10_000)
        }
      }),
    )
    return { phase1, peak, errors }
  }

  it('8 clients on a limit-2 key: never more than 2 holders', async () => {
    const r = await scenario([])
    expect(r.phase1).toEqual(['granted', 'granted', 'busy', 'busy', 'busy', 'busy', 'busy', 'busy'])
    expect(r.errors).toEqual([])
    expect(r.peak).toBeLessThanOrEqual(2)
    expect(r.peak).toBeGreaterThan(0)
  })

  it('negative control: an over-admitting claim is caught', async () => {
    const r = await scenario(['overAdmit'])
    expect(r.phase1.filter((o) => o === 'granted').length).toBe(3)
  })

  it('negative control: without the gate, concurrent claims collide (errors)', async () => {
    // Without the gate two claimers pick the same free slot; the primary key turns that into a
    // unique violation instead of a silent double grant, and the run reports errors.
    const r = await scenario(['noGate'])
    expect(r.errors.length + Math.max(0, r.peak - 2)).toBeGreaterThan(0)
  })
})

describe('gate', () => {
  async function gateHeld(faults: ClaimFault[]): Promise<string> {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(holder, faults)
    await claim(holder, schema, call('g', 5)).then(granted) // creates the gate row
    await holder.query('BEGIN')
    await holder.query(`SELECT 1 FROM "${schema}".gates WHERE key = 'g' FOR UPDATE`)
    try {
      const r = await claim(claimer, schema, call('g', 5, { lockTimeoutMs: 200 }))
      return r.outcome
    } catch (err) {
      return `error ${sqlstate(err)}`
    } finally {
      await holder.query('ROLLBACK')
    }
  }

  it('a claim waits for the key gate, bounded by lock_timeout (55P03)', async () => {
    expect(await gateHeld([])).toBe(`error ${SQLSTATE.lockTimeout}`)
  })

  it('negative control: a claim that skips the gate is caught', async () => {
    expect(await gateHeld(['noGate'])).toBe('granted')
  })

  it('a claim queued behind the gate proceeds once it is free', async () => {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(holder)
    await claim(holder, schema, call('g', 1)).then(granted)
    await holder.query('BEGIN')
    await holder.query(`SELECT 1 FROM "${schema}".gates WHERE key = 'g' FOR UPDATE`)
    const observer = await connect()
    const pending = claim(claimer, schema, call('g', 1))
    await waitUntilBlocked(observer, backendPidOf(claimer))
    await holder.query('COMMIT')
    expect((await pending).outcome).toBe('busy')
  })
})

// A claimer's backend pid without using its (busy) connection: node-postgres keeps it.
function backendPidOf(c: pg.Client): number {
  const pid = (c as unknown as { processID: number | null }).processID
  if (typeof pid !== 'number') throw new Error('client has no processID')
  return pid
}

describe('holds being renewed are counted', () => {
  async function scenario(faults: ClaimFault[]): Promise<string> {
    const holder = await connect()
    const renewer = await connect()
    const claimer = await connect()
    const observer = await connect()
    const schema = await freshSchema(holder, faults)
    const h = granted(await claim(holder, schema, call('r', 1)))
    // A renew in flight: its transaction has the hold's row locked.
    await renewer.query('BEGIN')
    expect((await renew(renewer, schema, 'r', h.token, 10_000)).outcome).toBe('renewed')
    const pending = claim(claimer, schema, call('r', 1))
    const settled = await Promise.race([
      waitUntilBlocked(observer, backendPidOf(claimer)).then(() => 'blocked'),
      pending.then(() => 'settled'),
    ])
    await renewer.query('COMMIT')
    const r = await pending.then(
      (x) => x.outcome,
      (err: unknown) => `error ${sqlstate(err)}`,
    )
    return `${settled} ${r}`
  }

  it('a claim waits for the renewing transaction and counts the hold', async () => {
    expect(await scenario([])).toBe('blocked busy')
  })

  it('negative control: SKIP LOCKED misses the hold (the slot primary key then refuses the insert)', async () => {
    // SKIP LOCKED neither waits nor counts the hold; it picks the hold's own slot, and only the
    // (key, slot) primary key stops a double grant, with an error instead of busy.
    expect(await scenario(['skipLocked'])).toBe('blocked error 23505')
  })
})

describe('lowered limits', () => {
  async function scenario(faults: ClaimFault[]): Promise<string[]> {
    const cs = await Promise.all(Array.from({ length: 4 }, () => connect()))
    const [a, b, c, d] = cs as [pg.Client, pg.Client, pg.Client, pg.Client]
    const schema = await freshSchema(a, faults)
    const ha = granted(await claim(a, schema, call('l', 3)))
    const hb = granted(await claim(b, schema, call('l', 3)))
    granted(await claim(c, schema, call('l', 3)))
    expect([ha.slot, hb.slot]).toEqual([0, 1])
    const out: string[] = []
    out.push((await claim(d, schema, call('l', 2))).outcome) // 3 holders, limit 2
    await release(a, schema, 'l', ha.token, ha.lock, 10_000)
    out.push((await claim(d, schema, call('l', 2))).outcome) // slots 1 and 2 held: still full
    await release(b, schema, 'l', hb.token, hb.lock, 10_000)
    const last = await claim(d, schema, call('l', 2)) // slot 2 held: one free below the limit
    out.push(`${last.outcome}${last.outcome === 'granted' ? ` slot ${last.slot} active ${last.active}` : ''}`)
    return out
  }

  it('holds above a lowered limit still count; the lowest free slot below it is taken', async () => {
    expect(await scenario([])).toEqual(['busy', 'busy', 'granted slot 0 active 2'])
  })

  it('negative control: counting only slots below the limit over-admits', async () => {
    expect((await scenario(['countBelowLimit']))[1]).toMatch(/^granted/)
  })
})

describe('session witness', () => {
  it('reclaims the hold of a terminated session (pg_terminate_backend)', async () => {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(claimer)
    granted(await claim(holder, schema, call('s', 1)))
    expect((await claim(claimer, schema, call('s', 1))).outcome).toBe('busy')
    const pid = await backendPid(holder)
    await claimer.query('SELECT pg_terminate_backend($1, 30000)', [pid])
    await waitBackendGone(claimer, pid)
    const r = granted(await claim(claimer, schema, call('s', 1)))
    expect(r.reclaimed).toBe(1)
    expect(await storedHolds(claimer, schema, 's')).toBe(1)
  })

  it('reclaims the hold of a SIGKILLed client process, woken by blocking on its session lock', async () => {
    const claimer = await connect()
    const schema = await freshSchema(claimer)
    const agent = new Child(process.execPath, [AGENT, pgBundle(), connectionString(), schema, JSON.stringify({ op: 'claim', call: call('k', 1) })])
    const held = JSON.parse(await agent.nextLine()) as { outcome: string }
    expect(held.outcome).toBe('granted')
    const busy = await claim(claimer, schema, call('k', 1))
    if (busy.outcome !== 'busy') throw new Error('expected busy')
    const hold = busy.holds[0]
    expect(hold?.sessionWitness).toBe(true)
    await agent.kill()
    // The waiter's fast path: block (shared) on the holder's session lock until its session ends.
    await claimer.query('BEGIN')
    await claimer.query('SET LOCAL statement_timeout = 30000')
    await claimer.query('SELECT pg_advisory_xact_lock_shared($1, $2)', [hold?.lock.classId, hold?.lock.objectId])
    await claimer.query('COMMIT')
    const r = granted(await claim(claimer, schema, call('k', 1)))
    expect(r.reclaimed).toBe(1)
  })

  async function liveHolder(faults: ClaimFault[]): Promise<ClaimResult> {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(claimer, faults)
    const h = granted(await claim(holder, schema, call('live', 1)))
    // A waiter blocked on the holder's lock (shared, as the store's watch does) changes nothing.
    const waiter = await connect()
    const observer = await connect()
    await waiter.query('BEGIN')
    const waiting = waiter.query('SELECT pg_advisory_xact_lock_shared($1, $2)', [h.lock.classId, h.lock.objectId])
    await waitUntilBlocked(observer, backendPidOf(waiter))
    const r = await claim(claimer, schema, call('live', 1))
    if (r.outcome === 'busy') await release(holder, schema, 'live', h.token, h.lock, 10_000)
    else await observer.query('SELECT pg_terminate_backend($1, 30000)', [await backendPid(holder)])
    await waiting
    await waiter.query('ROLLBACK')
    return r
  }

  it("never reclaims a live session's hold", async () => {
    const r = await liveHolder([])
    expect(r.outcome).toBe('busy')
    expect(r.reclaimed).toBe(0)
  })

  it('negative control: testing the wrong lock key reclaims a live hold', async () => {
    expect((await liveHolder(['wrongLockKey'])).outcome).toBe('granted')
  })

  it('judges are not fooled by a waiter holding the dead hold\'s lock (shared)', async () => {
    const holder = await connect()
    const waiter = await connect()
    const claimer = await connect()
    const schema = await freshSchema(claimer)
    const h = granted(await claim(holder, schema, call('w', 1)))
    const pid = await backendPid(holder)
    await claimer.query('SELECT pg_terminate_backend($1, 30000)', [pid])
    await waitBackendGone(claimer, pid)
    // A waiter that woke up still holds the shared transaction lock when the claimer judges.
    await waiter.query('BEGIN')
    await waiter.query('SELECT pg_advisory_xact_lock_shared($1, $2)', [h.lock.classId, h.lock.objectId])
    const r = await claim(claimer, schema, call('w', 1))
    await waiter.query('COMMIT')
    expect(r.outcome).toBe('granted')
  })

  async function ownSession(faults: ClaimFault[]): Promise<ClaimResult> {
    const c = await connect()
    const schema = await freshSchema(c, faults)
    granted(await claim(c, schema, call('own', 2)))
    return claim(c, schema, call('own', 2))
  }

  it("a second claim on the holder's own session does not reclaim the first (locks are re-entrant)", async () => {
    const r = granted(await ownSession([]))
    expect(r.reclaimed).toBe(0)
    expect(r.active).toBe(2)
  })

  it('negative control: forgetting the own-session case reclaims our own hold', async () => {
    expect((await ownSession(['ownSessionDead'])).reclaimed).toBe(1)
  })
})

describe('observed expiry', () => {
  async function scenario(faults: ClaimFault[]): Promise<string[]> {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(claimer, faults)
    // witness none: only expiry can speak (the session witness is tested above).
    const h = granted(await claim(holder, schema, call('e', 1, { witness: 'none' })))
    const out: string[] = []
    out.push((await claim(claimer, schema, call('e', 1))).outcome) // no observation: unknown → occupied
    // The claimer observed renew count 0 for a whole TTL, but the holder renewed meanwhile.
    const renewed = await renew(holder, schema, 'e', h.token, 10_000)
    out.push(renewed.outcome === 'renewed' ? `renewed ${renewed.renewCount}` : 'lost')
    out.push((await claim(claimer, schema, call('e', 1, { expired: [{ token: h.token, renewCount: '0' }] }))).outcome)
    // Observed unrenewed at count 1: expired.
    const r = await claim(claimer, schema, call('e', 1, { expired: [{ token: h.token, renewCount: '1' }] }))
    out.push(`${r.outcome} reclaimed ${r.reclaimed}`)
    out.push((await renew(holder, schema, 'e', h.token, 10_000)).outcome)
    out.push(String((await release(holder, schema, 'e', h.token, h.lock, 10_000)).released))
    return out
  }

  it('reclaims only when the renew count is still the one observed', async () => {
    expect(await scenario([])).toEqual(['busy', 'renewed 1', 'busy', 'granted reclaimed 1', 'lost', 'false'])
  })

  it('negative control: matching the token alone reclaims a renewed hold', async () => {
    expect((await scenario(['ignoreRenewCount']))[2]).toBe('granted')
  })

  it('negative control: reclaiming on suspicion takes a hold no witness speaks for', async () => {
    expect((await scenario(['reclaimOnSuspicion']))[0]).toBe('granted')
  })

  it('a server clock far off changes nothing: expiry is judged by counts, not timestamps', async () => {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(claimer)
    const h = granted(await claim(holder, schema, call('clock', 1, { witness: 'none', ttlMs: 1 })))
    // Recorded times as if the clock had jumped a year: nothing compares them.
    await claimer.query(`UPDATE "${schema}".holds SET acquired_at = acquired_at - interval '1 year', renewed_at = renewed_at - interval '1 year'`)
    expect((await claim(claimer, schema, call('clock', 1))).outcome).toBe('busy')
    await release(holder, schema, 'clock', h.token, h.lock, 10_000)
  })
})

describe('isolation', () => {
  async function underRepeatableRead(faults: ClaimFault[]): Promise<string> {
    const c = await connect()
    const schema = await freshSchema(c, faults)
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
    try {
      return (await claim(c, schema, call('iso', 1))).outcome
    } catch (err) {
      return `error ${sqlstate(err)}`
    } finally {
      await c.query('ROLLBACK')
    }
  }

  it('a claim under REPEATABLE READ is refused with its own SQLSTATE', async () => {
    expect(await underRepeatableRead([])).toBe(`error ${SQLSTATE.isolationRefused}`)
  })

  it('so is one under SERIALIZABLE, and a sweep', async () => {
    const c = await connect()
    const schema = await freshSchema(c)
    await c.query('BEGIN ISOLATION LEVEL SERIALIZABLE')
    await expect(claim(c, schema, call('iso', 1))).rejects.toMatchObject({ code: SQLSTATE.isolationRefused })
    await c.query('ROLLBACK')
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
    await expect(sweep(c, schema, 'iso', [], 1000)).rejects.toMatchObject({ code: SQLSTATE.isolationRefused })
    await c.query('ROLLBACK')
  })

  it('negative control: without the check the claim runs', async () => {
    expect(await underRepeatableRead(['noIsolationCheck'])).toBe('granted')
  })
})

describe('fences', () => {
  it('strictly increase across keys, releases and reclaims', async () => {
    const admin = await connect()
    const schema = await freshSchema(admin)
    const seen: bigint[] = []
    for (let i = 0; i < 20; i++) {
      const c = await connect()
      const key = `f${i % 3}`
      // granted() also proves the previous holder of `key`, if terminated, was reclaimed.
      const r = granted(await claim(c, schema, call(key, 1)))
      seen.push(BigInt(r.fence))
      if (i % 4 === 3) {
        const pid = await backendPid(c)
        await admin.query('SELECT pg_terminate_backend($1, 30000)', [pid])
        await waitBackendGone(admin, pid)
      } else {
        await release(c, schema, key, r.token, r.lock, 10_000)
      }
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i] as bigint).toBeGreaterThan(seen[i - 1] as bigint)
  })

  it('stop at 2^53 - 1 with a distinct SQLSTATE; the last one is exact', async () => {
    const c = await connect()
    const schema = await freshSchema(c)
    await c.query(`SELECT setval('"${schema}".fences', $1::bigint - 1)`, [MAX_FENCE])
    const r = granted(await claim(c, schema, call('max', 5)))
    expect(r.fence).toBe(MAX_FENCE)
    expect(Number(r.fence)).toBe(Number.MAX_SAFE_INTEGER)
    await expect(claim(c, schema, call('max', 5))).rejects.toMatchObject({ code: SQLSTATE.fenceExhausted })
    // Nothing half-done was left behind by the refused claim.
    expect(await storedHolds(c, schema, 'max')).toBe(1)
  })
})

describe('release', () => {
  it('is token-checked, true once, and never removes another hold', async () => {
    const a = await connect()
    const b = await connect()
    const schema = await freshSchema(a)
    const ha = granted(await claim(a, schema, call('t', 2)))
    const hb = granted(await claim(b, schema, call('t', 2)))
    expect(await release(a, schema, 't', '00000000-0000-4000-8000-000000000000', null, 10_000)).toEqual({ released: false, unlocked: false })
    // A wrong key must not strip the live hold of its session lock either.
    expect(await release(a, schema, 'other-key', ha.token, ha.lock, 10_000)).toEqual({ released: false, unlocked: false })
    expect(await storedHolds(a, schema, 't')).toBe(2)
    expect(await release(a, schema, 't', ha.token, ha.lock, 10_000)).toEqual({ released: true, unlocked: true })
    expect(await release(a, schema, 't', ha.token, ha.lock, 10_000)).toEqual({ released: false, unlocked: false })
    expect(await storedHolds(a, schema, 't')).toBe(1)
    const left = await inspect(a, schema, 't')
    expect(left.holds.map((h) => h.token)).toEqual([hb.token])
    expect(left.holds[0]?.state).toBe('alive')
  })

  it('negative control: a release that ignores the token removes another hold', async () => {
    const a = await connect()
    const b = await connect()
    const schema = await freshSchema(a, ['releaseIgnoresToken'])
    granted(await claim(a, schema, call('t', 2)))
    const hb = granted(await claim(b, schema, call('t', 2)))
    expect((await release(b, schema, 't', hb.token, hb.lock, 10_000)).released).toBe(true)
    expect((await release(b, schema, 't', hb.token, hb.lock, 10_000)).released).toBe(true) // took a's hold
    expect(await storedHolds(a, schema, 't')).toBe(0)
  })

  it('drops the session lock of a hold reclaimed under its holder', async () => {
    const holder = await connect()
    const claimer = await connect()
    const schema = await freshSchema(claimer)
    const h = granted(await claim(holder, schema, call('x', 1, { witness: 'session' })))
    granted(await claim(claimer, schema, call('x', 1, { expired: [{ token: h.token, renewCount: '0' }] })))
    expect(await release(holder, schema, 'x', h.token, h.lock, 10_000)).toEqual({ released: false, unlocked: true })
    const locks = await holder.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`)
    expect(locks.rows).toEqual([])
  })

  it('NOTIFYs the per-key channel, whose name the TypeScript side computes alike', async () => {
    const listener = await connect()
    const c = await connect()
    const schema = await freshSchema(c)
    const key = `ключ "with" quotes\u{1F600}${'x'.repeat(200)}`
    const channel = channelFor(schema, key)
    const server = await c.query<{ ch: string }>(`SELECT "${schema}".channel($1) AS ch`, [key])
    expect(server.rows[0]?.ch).toBe(channel)
    expect(channel).toMatch(/^proclease_[0-9a-f]{40}$/)
    expect(channelFor(schema, 'a')).not.toBe(channelFor(schema, 'A'))
    await listener.query(`LISTEN "${channel}"`)
    const heard = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve))
    const h = granted(await claim(c, schema, call(key, 1)))
    await release(c, schema, key, h.token, h.lock, 10_000)
    const n = await heard
    expect(n.channel).toBe(channel)
    expect(n.payload).toBe('released')
  })
})

describe('inspect, sweep, list', () => {
  it('inspect judges without changing anything; sweep removes exactly the proven dead', async () => {
    const live = await connect()
    const doomed = await connect()
    const c = await connect()
    const schema = await freshSchema(c)
    granted(await claim(live, schema, call('i', 4, { holder: { pid: 123, hostname: 'h1', argv0: 'node' }, metadata: { job: 7 } })))
    granted(await claim(doomed, schema, call('i', 4)))
    const none = granted(await claim(live, schema, call('i', 4, { witness: 'none' })))
    const pid = await backendPid(doomed)
    await c.query('SELECT pg_terminate_backend($1, 30000)', [pid])
    await waitBackendGone(c, pid)
    const before = await inspect(c, schema, 'i', { verbose: true })
    expect(before.holds.map((h) => h.state)).toEqual(['alive', 'dead', 'unknown'])
    expect([before.active, before.dead]).toEqual([2, 1])
    expect(before.holds[0]?.verbose?.holder).toMatchObject({ pid: 123, hostname: 'h1', argv0: 'node' })
    expect(before.holds[0]?.verbose?.metadata).toEqual({ job: 7 })
    expect(await storedHolds(c, schema, 'i')).toBe(3)
    const quiet = await inspect(c, schema, 'i')
    expect(quiet.holds[0]?.verbose).toBeNull()
    const withExpiry = await inspect(c, schema, 'i', { expired: [{ token: none.token, renewCount: '0' }] })
    expect(withExpiry.holds.map((h) => h.state)).toEqual(['alive', 'dead', 'dead'])
    expect(await storedHolds(c, schema, 'i')).toBe(3)
    const swept = await sweep(c, schema, 'i', [], 10_000)
    expect(swept.reclaimed.map((r) => r.slot)).toEqual([1])
    expect(swept.remaining).toBe(2)
    expect(await listKeys(c, schema)).toEqual([{ key: 'i', holds: 2 }])
    expect(await sweep(c, schema, 'never-claimed', [], 10_000)).toEqual({ reclaimed: [], remaining: 0 })
  })
})

describe('processes', () => {
  it('several processes claim a limit-1 key: one granted, the others busy; release frees it', async () => {
    const c = await connect()
    const schema = await freshSchema(c)
    const bundle = pgBundle()
    const agents = Array.from({ length: 4 }, () => new Child(process.execPath, [AGENT, bundle, connectionString(), schema, JSON.stringify({ op: 'claim', call: call('p', 1) })]))
    const results = await Promise.all(agents.map(async (a) => JSON.parse(await a.nextLine()) as { outcome: string }))
    expect(results.filter((r) => r.outcome === 'granted').length).toBe(1)
    const winner = agents[results.findIndex((r) => r.outcome === 'granted')] as Child
    winner.proc.stdin?.write('release\n')
    expect(JSON.parse(await winner.nextLine())).toEqual({ released: true, unlocked: true })
    granted(await claim(c, schema, call('p', 1)))
  })
})
