// Rounds, counted and reported (issue 9 item 7): skewed client clocks never take a held slot
// (double holds over every round, expected 0), and a SIGKILLed holder's slot goes to a waiter
// blocked on its session lock within milliseconds (a measured figure, not an assertion).
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease } from '../../../lib/index.js'
import { removeLeaseLib } from '../../helpers/lease.js'
import { connect, connectionString } from '../../helpers/pg.js'
import { cleanupFaults, holder, key, median, monoMs, open, pollUntilAsync, setup } from './fault-kit.js'

afterEach(cleanupFaults)
afterAll(removeLeaseLib)

const DAY = 86_400_000
/** Waiters' clocks: a day and 20 s ahead and behind, and one running 1.5 times too fast. */
const SKEWS: Array<{ name: string; now: () => number }> = [
  { name: '+1 day', now: () => performance.now() + DAY },
  { name: '-1 day', now: () => performance.now() - DAY },
  { name: '+20 s', now: () => performance.now() + 20_000 },
  { name: '-20 s', now: () => performance.now() - 20_000 },
  { name: 'x1.5 rate', now: () => performance.now() * 1.5 },
]
const KEYS = 4

describe('PostgreSQL store: rounds', () => {
  it(`skewed clocks (${SKEWS.map((s) => s.name).join(', ')}) never take a held slot: ${KEYS} keys x ${SKEWS.length} clocks, double holds counted`, async () => {
    const o = await setup(connectionString(), { ttlMs: 1000 })
    const holderStore = open(o)
    const skewed = SKEWS.map((s) => ({ ...s, store: open(o, { now: s.now }) }))
    const keys = Array.from({ length: KEYS }, key)
    const leases = await Promise.all(keys.map((k) => acquireLease({ key: k, limit: 1, store: holderStore })))
    // Each skewed waiter waits 2.5 TTLs on each key against a live, renewing holder.
    const outcomes = await Promise.all(
      keys.flatMap((k) =>
        skewed.map((s) =>
          acquireLease({ key: k, limit: 1, store: s.store, waitMs: 2500 }).then(
            async (l) => {
              await l.release()
              return `granted (${s.name})`
            },
            (err: unknown) => (err as { code?: string }).code ?? String(err),
          ),
        ),
      ),
    )
    const doubles = outcomes.filter((x) => x.startsWith('granted')).length
    console.info(`[skew] ${outcomes.length} waiter-rounds (${KEYS} keys x ${SKEWS.length} clocks, ttl 1000, 2.5 TTLs each): double holds ${doubles}`)
    expect(outcomes.filter((x) => x !== 'lease_busy')).toEqual([])
    for (const l of leases) expect(l.held()).toBe(true)
    // Released, the slot goes to a skewed waiter at once: the skewed stores work.
    for (const l of leases) await l.release()
    for (const s of skewed) await (await acquireLease({ key: keys[0] as string, limit: 1, store: s.store, waitMs: 5000 })).release()
  })

  it('negative twin: a waiter whose clock runs 10 times too fast sees a live hold unrenewed for a "TTL" and takes it (the count catches it)', async () => {
    // Observed expiry trusts the waiter's clock rate: a TTL on a 10x clock is ttl/10 of real time,
    // shorter than the renewal period (ttl/3). Offsets do not matter; rates do (docs/postgres.md).
    const o = await setup(connectionString(), { ttlMs: 1000 })
    const lease = await acquireLease({ key: key(), limit: 1, store: open(o) })
    const fast = open(o, { now: () => performance.now() * 10 })
    const taken = await acquireLease({ key: lease.key, limit: 1, store: fast, waitMs: 2500 }).then(
      async (l) => {
        await l.release()
        return true
      },
      () => false,
    )
    expect(taken).toBe(true)
    await lease.release()
  })

  it('a SIGKILLed holder’s slot goes to a waiter blocked on its session lock: recovery times over rounds', async () => {
    const o = await setup(connectionString())
    const admin = await connect()
    const times: number[] = []
    for (let i = 0; i < 5; i++) {
      const k = key()
      const h = await holder(o)
      expect(await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })).toMatchObject({ ev: 'acquired' })
      const store = open(o)
      const waiting = acquireLease({ key: k, limit: 1, store, waitMs: 30_000 })
      await pollUntilAsync('the waiter to block on the holder’s session lock', async () => {
        const r = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name LIKE $1 AND wait_event_type = 'Lock'`, ['proclease waiter%'])
        return r.rows.length > 0
      })
      const killedAt = monoMs()
      h.proc.kill('SIGKILL')
      const lease = await waiting
      times.push(monoMs() - killedAt)
      await lease.release()
      await h.kill()
      await store.close()
    }
    console.info(`[sigkill] recovery after SIGKILL of a holder (ttl 15000), 5 rounds: median ${median(times).toFixed(1)} ms, min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)} (${times.map((t) => t.toFixed(1)).join(', ')})`)
  })
})
