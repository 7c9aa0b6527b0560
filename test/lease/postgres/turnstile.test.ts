// One wake per hand-off on the PostgreSQL store (issues 9, 10): fair waiters block on the place
// ahead of theirs in the key's queue and only the head blocks on the holder; barging waiters
// (fair: false) queue for the key's turnstile and only its owner blocks on the holder. Either way
// a release wakes one waiter, not every one of them; and a SIGKILLed turnstile owner's turnstile
// goes with its session to the next waiter.
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { type Lease, acquireLease } from '../../../lib/index.js'
import { PostgresStore } from '../../../lib/lease/postgres/index.js'
import type { KeyWatch, WakeHint } from '../../../lib/lease/store.js'
import { JsonChild, leaseLib } from '../../helpers/lease.js'
import { connect, connectionString, freshSchema, pollUntil, storesClosedAfterEach } from '../../helpers/pg.js'

/** The turnstile's lock class (calls.ts TURNSTILE_LOCK_CLASS), as pg_locks shows it. */
const TURNSTILE_CLASS = 7070

/** Counts the wakes its watches deliver to the engine (each one makes the engine claim again). */
class CountingStore extends PostgresStore {
  wakes = 0
  override watch(key: string, wake: WakeHint, onChange: () => void, place?: unknown): Promise<KeyWatch | null> {
    return super.watch(
      key,
      wake,
      () => {
        this.wakes++
        onChange()
      },
      place,
    )
  }
}

type Opts = { connectionString: string; schema: string; ttlMs: number }
const track = storesClosedAfterEach()

function counting(o: Opts): CountingStore {
  return track(new CountingStore(o))
}


interface LockView {
  /** Backends granted / waiting for a turnstile lock of this database. */
  turnstileGranted: number
  turnstileWaiting: number
  /** Backends waiting on some hold's session lock (class = the schema's OID). */
  holdWaiting: number
}

async function locks(admin: pg.Client, schema: string): Promise<LockView> {
  const r = await admin.query<{ ts_granted: number; ts_waiting: number; hold_waiting: number }>(
    `SELECT count(*) FILTER (WHERE classid = $1 AND granted)::int AS ts_granted,
            count(*) FILTER (WHERE classid = $1 AND NOT granted)::int AS ts_waiting,
            count(*) FILTER (WHERE classid = (SELECT oid FROM pg_namespace WHERE nspname = $2) AND NOT granted)::int AS hold_waiting
       FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [TURNSTILE_CLASS, schema],
  )
  const row = r.rows[0]
  if (!row) throw new Error('pg_locks: no row')
  return { turnstileGranted: row.ts_granted, turnstileWaiting: row.ts_waiting, holdWaiting: row.hold_waiting }
}

describe('PostgreSQL store: the turnstile', () => {
  it.each([true, false])('wakes at most one of three waiters per hand-off (fair: %s)', async (fair) => {
    const admin = await connect()
    // A TTL far beyond the test: no expiry recheck wakes anyone.
    const o: Opts = { connectionString: connectionString(), schema: await freshSchema(admin), ttlMs: 120_000 }
    const k = `k-${randomBytes(4).toString('hex')}`
    const first = new PostgresStore(o)
    track(first)
    let held: Lease = await acquireLease({ key: k, limit: 1, store: first })
    const waiters = [counting(o), counting(o), counting(o)]
    // Three acquires always pending: a granted waiter's store asks again at once.
    const pending = new Map<CountingStore, Promise<Lease>>()
    const ask = (s: CountingStore): void => {
      const p = acquireLease({ key: k, limit: 1, store: s, waitMs: 60_000, fair })
      // A failed test closes the stores under it: that rejection is not this test's finding.
      p.catch(() => undefined)
      pending.set(s, p)
    }
    for (const s of waiters) ask(s)
    const handOffs = 6
    for (let i = 0; i < handOffs; i++) {
      // Settled: every waiter's session is in a lock wait, on the holder's session lock or (here,
      // all but one) on the turnstile; a waiter that gave up its watch may linger in the queue.
      await pollUntil('three waiters in lock waits, one on the holder', async () => {
        const l = await locks(admin, o.schema)
        return l.turnstileWaiting + l.holdWaiting >= 3 && l.holdWaiting >= 1
      })
      expect(await held.release()).toBe(true)
      const [winner, lease] = await Promise.race([...pending].map(([s, p]) => p.then((l) => [s, l] as const)))
      pending.delete(winner)
      held = lease
      ask(winner)
      // At most one wake so far per release. (A waiter's own backoff poll may win a release before
      // the owner's wake lands, and that wake may land after the grant: only the total is exact.)
      expect(waiters.reduce((n, s) => n + s.wakes, 0), `wakes after hand-off ${i + 1}`).toBeLessThanOrEqual(i + 1)
    }
    const wakes = waiters.reduce((n, s) => n + s.wakes, 0)
    expect(wakes).toBeLessThanOrEqual(handOffs)
    expect(wakes).toBeGreaterThan(0)
    // Wind down: each pending acquire in turn gets the lease and gives it back.
    await held.release()
    while (pending.size > 0) {
      const [s, lease] = await Promise.race([...pending].map(([s, p]) => p.then((l) => [s, l] as const)))
      pending.delete(s)
      await lease.release()
    }
  })

  it('a SIGKILLed turnstile owner does not strand the waiters queued behind it (fair: false)', async () => {
    const admin = await connect()
    const o: Opts = { connectionString: connectionString(), schema: await freshSchema(admin), ttlMs: 120_000 }
    const k = `k-${randomBytes(4).toString('hex')}`
    const first = new PostgresStore(o)
    track(first)
    const held = await acquireLease({ key: k, limit: 1, store: first })
    // The first waiter, in a process of its own: it gets the turnstile and blocks on the holder.
    const owner = new JsonChild('../postgres/fixtures/store-agent.mjs', [await leaseLib(), JSON.stringify(o)])
    await owner.expect('ready')
    owner.send({ op: 'acquire', opts: { key: k, limit: 1, waitMs: 60_000, fair: false } })
    await pollUntil('the other process owning the turnstile', async () => {
      const l = await locks(admin, o.schema)
      return l.turnstileGranted === 1 && l.holdWaiting === 1
    })
    const w = counting(o)
    const waiting = acquireLease({ key: k, limit: 1, store: w, waitMs: 60_000, fair: false })
    waiting.catch(() => undefined)
    await pollUntil('this waiter queued behind it', async () => (await locks(admin, o.schema)).turnstileWaiting === 1)
    await owner.kill()
    // The owner's session ended with it: this waiter owns the turnstile and blocks on the holder.
    await pollUntil('the turnstile handed on', async () => {
      const l = await locks(admin, o.schema)
      return l.turnstileGranted === 1 && l.turnstileWaiting === 0 && l.holdWaiting === 1
    })
    expect(w.wakes).toBe(0)
    await held.release()
    const lease = await waiting
    expect(w.wakes).toBeLessThanOrEqual(1)
    await lease.release()
  })
})
