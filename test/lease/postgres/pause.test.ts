// A paused server (every server process SIGSTOPped), on a cluster of this file's own: a waiter
// that cannot get an answer fails with store_unavailable instead of hanging past its waitMs, a
// holder's lease.signal fires ('expired') at its local deadline although its renewal never
// returns, close() returns, and after the server resumes nobody holds twice.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, tryAcquireLease } from '../../../lib/index.js'
import { type Cluster, pause, resume, start } from '../../../scripts/pg/cluster.mjs'
import { removeLeaseLib } from '../../helpers/lease.js'
import { selfHolder } from '../../../lib/lease/engine.js'
import { connect } from '../../helpers/pg.js'
import { cleanupFaults, holder, key, monoMs, open, ownCluster, pollUntilAsync, setup, within } from './fault-kit.js'

afterEach(cleanupFaults)
afterAll(removeLeaseLib)

// Generous: every wait below is bounded by the store itself (a TTL of 2 s, a connect timeout of
// 5 s); this only turns a hang into a failure that says what hung.
const HANG_MS = 20_000

/** Until a waiter session blocks on a holder's session lock and a listener session sits idle. */
async function waitForWatch(cluster: Cluster): Promise<void> {
  const admin = await connect(cluster.connectionString)
  await pollUntilAsync('a waiter to block on the holder’s session lock and a listener to listen', async () => {
    const r = await admin.query<{ app: string; w: string | null; state: string }>(
      `SELECT application_name AS app, wait_event_type AS w, state FROM pg_stat_activity WHERE application_name LIKE 'proclease %'`,
    )
    const waiterBlocked = r.rows.some((x) => x.app.startsWith('proclease waiter') && x.w === 'Lock')
    const listenerIdle = r.rows.some((x) => x.app.startsWith('proclease listener') && x.state === 'idle')
    return waiterBlocked && listenerIdle
  })
  await admin.end()
}

describe('PostgreSQL store: a paused server', () => {
  it('waiters fail with store_unavailable, the holder’s signal fires by its deadline, close() returns; nothing is held twice after resume', async () => {
    const cluster: Cluster = ownCluster(await start())
    const o = await setup(cluster.connectionString, { ttlMs: 2000 })
    const k = key()
    const h = await holder(o)
    const held = await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })
    expect(held).toMatchObject({ ev: 'acquired' })
    // A waiter whose sessions are open before the pause, already waiting in acquire...
    const store = open(o)
    expect(await tryAcquireLease({ key: k, limit: 1, store })).toBeNull()
    const waiting = acquireLease({ key: k, limit: 1, store, waitMs: 60_000 }).then(
      (l) => ({ granted: l }),
      (err: unknown) => ({ err }),
    )
    // Its watch is up before the pause: the listener session idle, the waiter session blocked on
    // the holder's session lock (so close() below must end sessions a paused server never closes).
    await waitForWatch(cluster)
    // ...and one that starts after it.
    const late = open(o)
    const pausedAt = monoMs()
    pause(cluster)
    let resumed = false
    try {
      const lateTry = acquireLease({ key: k, limit: 1, store: late, waitMs: 100 }).then(
        () => 'granted',
        (err: unknown) => err,
      )
      const lost = await within(HANG_MS, 'the holder’s lost notice', h.expect('lost'))
      expect(lost).toMatchObject({ reason: 'expired' })
      expect(await h.call({ op: 'check' })).toMatchObject({ held: false, aborted: true, reason: 'expired' })
      const w = await within(HANG_MS, 'the waiting acquire', waiting)
      const failedAt = monoMs()
      expect(w).toMatchObject({ err: { code: 'store_unavailable' } })
      expect(await within(HANG_MS, 'the late acquire', lateTry)).toMatchObject({ code: 'store_unavailable' })
      await within(HANG_MS, 'close() of a store on a paused server', store.close())
      console.info(
        `[pause] holder lost its hold ${((lost.at as number) - pausedAt).toFixed(0)} ms after the pause (ttl 2000); ` +
          `the waiting acquire failed store_unavailable after ${(failedAt - pausedAt).toFixed(0)} ms`,
      )
    } finally {
      if (!resumed) resume(cluster)
      resumed = true
    }
    // Resumed: the old hold is gone (released by its holder once its session answered again, or
    // expired), the new holder is the only one.
    const next = open(o)
    const lease = await acquireLease({ key: k, limit: 1, store: next, waitMs: 30_000 })
    expect(lease.fence).toBeGreaterThan(held.fence as number)
    expect(await h.call({ op: 'check' })).toMatchObject({ held: false })
    await lease.release()
  })

  it('close() returns while the server is paused, with a watch (listener idle, waiter blocked) still open', async () => {
    const cluster: Cluster = ownCluster(await start())
    const o = await setup(cluster.connectionString, { ttlMs: 2000 })
    const k = key()
    const h = await holder(o)
    expect(await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })).toMatchObject({ ev: 'acquired' })
    // The store's own calls, without the engine's loop: nothing but close() touches the sessions.
    const store = open(o)
    const attempt = await store.claim({ key: k, limit: 1, weight: 1, metadata: {}, holder: selfHolder(), fair: true, mode: 'wait', place: null })
    if (attempt.kind !== 'busy') throw new Error(`expected busy, got ${attempt.kind}`)
    const watch = await store.watch(k, attempt.wake, () => undefined)
    expect(watch?.covered).toBe(true)
    await waitForWatch(cluster)
    pause(cluster)
    try {
      await within(HANG_MS, 'close() of a store on a paused server', store.close())
    } finally {
      resume(cluster)
    }
  })
})