// postgresStore through PgBouncer in transaction mode (a cluster and pooler of this file's own):
// with the session witness it is refused (store_unsupported); with witness 'none' it works on
// expiry alone — a SIGKILLed holder's slot is freed only by its observed expiry, and waiters poll
// (LISTEN and session locks mean nothing through a transaction pooler).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { acquireLease, tryAcquireLease } from '../../../lib/index.js'
import { selfHolder } from '../../../lib/lease/engine.js'
import { type Cluster, start, stop } from '../../../scripts/pg/cluster.mjs'
import { type PgBouncer, startPgBouncer } from '../../../scripts/pg/pgbouncer.mjs'
import { removeLeaseLib } from '../../helpers/lease.js'
import { cleanupFaults, holder, key, monoMs, open, setup } from './fault-kit.js'

let cluster: Cluster
let txPool: PgBouncer

beforeAll(async () => {
  cluster = await start()
  txPool = await startPgBouncer(cluster, { mode: 'transaction' })
})
afterAll(async () => {
  removeLeaseLib()
  await txPool?.stop()
  if (cluster) await stop(cluster, { mode: 'immediate' })
})
afterEach(cleanupFaults)

describe('PostgreSQL store through PgBouncer (transaction mode)', () => {
  it("witness 'session' is refused with store_unsupported", async () => {
    const o = await setup(txPool.connectionString, {}, cluster.connectionString)
    const store = open(o)
    await expect(acquireLease({ key: key(), limit: 1, store })).rejects.toMatchObject({ code: 'store_unsupported' })
  })

  it("witness 'none' works on expiry alone: a SIGKILLed holder's slot is freed by its observed TTL, waiters poll", async () => {
    const o = await setup(txPool.connectionString, { witness: 'none', ttlMs: 1500 }, cluster.connectionString)
    const k = key()
    const h = await holder(o)
    const first = await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })
    expect(first).toMatchObject({ ev: 'acquired' })
    const store = open(o)
    // No LISTEN, no session lock to block on: the store offers no watch, the engine polls.
    const busy = await store.claim({ key: k, limit: 1, weight: 1, metadata: {}, holder: selfHolder(), fair: true, mode: 'wait', place: null })
    if (busy.kind !== 'busy') throw new Error(`expected busy, got ${busy.kind}`)
    expect(await store.watch(k, busy.wake, () => undefined)).toBeNull()
    const killedAt = monoMs()
    await h.kill()
    // Its connection closed, but nothing witnesses that through the pooler: still held.
    expect(await tryAcquireLease({ key: k, limit: 1, store })).toBeNull()
    const lease = await acquireLease({ key: k, limit: 1, store, waitMs: 30_000 })
    console.info(`[pooler] witness 'none' through PgBouncer: a SIGKILLed holder's slot went to a waiter ${(monoMs() - killedAt).toFixed(0)} ms after the kill (ttl 1500)`)
    expect(lease.fence).toBeGreaterThan(first.fence as number)
    // A release through the pooler is found by polling.
    const other = open(o)
    const waiting = acquireLease({ key: k, limit: 1, store: other, waitMs: 30_000 })
    expect(await lease.release()).toBe(true)
    const next = await waiting
    expect(next.fence).toBeGreaterThan(lease.fence)
    await next.release()
  })
})
