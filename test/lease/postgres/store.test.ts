// The PostgreSQL store behind the public lease API (issue 9), against a real server and real
// processes: grants and counts, crash recovery through the session witness, a paused holder that
// outlives its TTL (it learns it lost the hold, and its fenced write is refused), a server
// restart, an isolation level other than READ COMMITTED, skewed client clocks, and close().
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, listLeaseKeys, tryAcquireLease } from '../../../lib/index.js'
import { PostgresStore, postgresStore } from '../../../lib/lease/postgres/index.js'
import { type Cluster, start, stop, restart } from '../../../scripts/pg/cluster.mjs'
import { JsonChild, cleanup, leaseLib, removeLeaseLib, until } from '../../helpers/lease.js'
import { closeClients, connect, connectionString, freshSchema } from '../../helpers/pg.js'

const stores: PostgresStore[] = []
const clusters: Cluster[] = []
afterEach(async () => {
  await cleanup()
  for (const s of stores.splice(0)) await s.close()
  await closeClients()
  for (const c of clusters.splice(0)) await stop(c, { mode: 'immediate' })
})
afterAll(removeLeaseLib)

type StoreOpts = { connectionString: string; schema: string; ttlMs?: number; witness?: 'session' | 'none' }

async function setup(extra: Partial<StoreOpts> = {}, cs = connectionString()): Promise<StoreOpts> {
  const admin = await connect(cs)
  return { connectionString: cs, schema: await freshSchema(admin), ...extra }
}

function open(o: StoreOpts, seams?: ConstructorParameters<typeof PostgresStore>[1]): PostgresStore {
  const s = new PostgresStore(o, seams)
  stores.push(s)
  return s
}

async function holder(o: StoreOpts): Promise<JsonChild> {
  const c = new JsonChild('../postgres/fixtures/store-agent.mjs', [await leaseLib(), JSON.stringify(o)])
  await c.expect('ready')
  return c
}

const key = (): string => `k-${randomBytes(4).toString('hex')}`

describe('PostgreSQL store: the lease API', () => {
  it('grants up to the limit, answers busy with counts only, fences rise, release frees', async () => {
    const o = await setup()
    const store = open(o)
    const k = key()
    const a = await acquireLease({ key: k, limit: 2, store })
    const b = await acquireLease({ key: k, limit: 2, store })
    expect(new Set([a.slot, b.slot])).toEqual(new Set([0, 1]))
    expect(b.fence).toBeGreaterThan(a.fence)
    expect(await tryAcquireLease({ key: k, limit: 2, store })).toBeNull()
    const err = await acquireLease({ key: k, limit: 2, store, waitMs: 50 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'lease_busy', capacity: { active: 2, limit: 2 } })
    expect(JSON.stringify(err)).not.toMatch(new RegExp(String(process.pid)))
    expect((await inspectLeases({ key: k, store })).active).toBe(2)
    expect(await listLeaseKeys({ store })).toContain(k)
    expect(a.held()).toBe(true)
    expect(await a.release()).toBe(true)
    expect(await a.release()).toBe(false)
    expect(a.held()).toBe(false)
    expect(a.signal.aborted).toBe(false)
    const c = await acquireLease({ key: k, limit: 2, store })
    expect(c.fence).toBeGreaterThan(b.fence)
    await b.release()
    await c.release()
  })

  it('a SIGKILLed holder’s slot goes to a waiter through the session witness, long before its TTL', async () => {
    const o = await setup({ ttlMs: 60_000 })
    const k = key()
    const h = await holder(o)
    expect(await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })).toMatchObject({ ev: 'acquired' })
    const store = open(o)
    const waiting = acquireLease({ key: k, limit: 1, store, waitMs: 30_000 })
    await h.kill()
    const lease = await waiting
    expect(lease.slot).toBe(0)
    await lease.release()
  })

  it('a SIGSTOPped holder is reclaimed after its TTL; resumed, it knows, and its fenced write is refused', async () => {
    const o = await setup({ ttlMs: 1500 })
    const admin = await connect()
    const table = `res_${randomBytes(4).toString('hex')}`
    await admin.query(`CREATE TABLE ${table} (fence bigint, value text); INSERT INTO ${table} VALUES (0, 'init')`)
    const k = key()
    const h = await holder(o)
    const held = await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })
    expect(held).toMatchObject({ ev: 'acquired' })
    h.proc.kill('SIGSTOP')
    const store = open(o)
    const lease = await acquireLease({ key: k, limit: 1, store, waitMs: 30_000 })
    expect(lease.fence).toBeGreaterThan(held.fence as number)
    await admin.query(`UPDATE ${table} SET fence = $1, value = 'new holder' WHERE fence < $1`, [lease.fence])
    h.proc.kill('SIGCONT')
    h.send({ op: 'check' })
    // The 'lost' notice (from lease.signal) and the check's answer come in either order.
    const seen = [await h.next(), await h.next()]
    expect(seen).toContainEqual(expect.objectContaining({ ev: 'lost', reason: 'expired' }))
    expect(seen).toContainEqual(expect.objectContaining({ ev: 'check', held: false, aborted: true }))
    expect(await h.call({ op: 'write', table, value: 'stale holder' })).toMatchObject({ ev: 'written', rows: 0 })
    const row = await admin.query(`SELECT value FROM ${table}`)
    expect(row.rows[0]).toEqual({ value: 'new holder' })
    await lease.release()
  })

  it('refuses a session whose default isolation is REPEATABLE READ with store_unsupported', async () => {
    const admin = await connect()
    const role = `rr_${randomBytes(4).toString('hex')}`
    await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER`)
    await admin.query(`ALTER ROLE ${role} SET default_transaction_isolation = 'repeatable read'`)
    try {
      const o = await setup()
      const cs = `${o.connectionString}${o.connectionString.includes('?') ? '&' : '?'}user=${role}`
      const store = open({ ...o, connectionString: cs })
      await expect(acquireLease({ key: key(), limit: 1, store })).rejects.toMatchObject({ code: 'store_unsupported' })
    } finally {
      for (const s of stores.splice(0)) await s.close()
      await admin.query(`DROP ROLE ${role}`)
    }
  })

  it('a client whose clock is a day ahead or behind never takes a held slot', async () => {
    const o = await setup({ ttlMs: 1000 })
    const k = key()
    const store = open(o)
    const lease = await acquireLease({ key: k, limit: 1, store })
    for (const skew of [86_400_000, -86_400_000]) {
      const skewed = open(o, { now: () => performance.now() + skew })
      // Three TTLs of waiting against a live, renewing holder.
      await expect(acquireLease({ key: k, limit: 1, store: skewed, waitMs: 3000 })).rejects.toMatchObject({ code: 'lease_busy' })
    }
    expect(lease.held()).toBe(true)
    await lease.release()
  })

  it('refuses a key containing U+0000 (PostgreSQL text cannot hold it) with invalid_argument', async () => {
    const store = open(await setup())
    await expect(acquireLease({ key: 'a\u0000b', limit: 1, store })).rejects.toMatchObject({ code: 'invalid_argument' })
    await expect(inspectLeases({ key: 'a\u0000b', store })).rejects.toMatchObject({ code: 'invalid_argument' })
  })

  it('close() releases what is held and later calls reject with store_closed', async () => {
    const o = await setup()
    const store = postgresStore(o)
    const k = key()
    const lease = await acquireLease({ key: k, limit: 1, store })
    await store.close()
    await store.close()
    await expect(acquireLease({ key: k, limit: 1, store })).rejects.toMatchObject({ code: 'store_closed' })
    expect(lease.held()).toBe(false)
    const other = open(o)
    const next = await tryAcquireLease({ key: k, limit: 1, store: other })
    expect(next).not.toBeNull()
    await next?.release()
  })
})

describe('PostgreSQL store: server restart', () => {
  it('holders learn the connection is lost; their holds are reclaimed only once expired; never two holders', async () => {
    const cluster = await start()
    clusters.push(cluster)
    const o = await setup({ ttlMs: 2000 }, cluster.connectionString)
    const k = key()
    const h = await holder(o)
    const first = await h.call({ op: 'acquire', opts: { key: k, limit: 1 } })
    expect(first).toMatchObject({ ev: 'acquired' })
    const lost = h.next()
    const restarted = await restart(cluster, { mode: 'fast' })
    clusters.splice(0, 1, restarted)
    expect(await lost).toMatchObject({ ev: 'lost', reason: 'connection_lost' })
    const store = open({ ...o, connectionString: restarted.connectionString })
    // Right after the restart the old hold's session lock is gone with the old server, but that
    // proves nothing: only its expiry, observed by this waiter, frees the slot.
    expect(await tryAcquireLease({ key: k, limit: 1, store })).toBeNull()
    const lease = await acquireLease({ key: k, limit: 1, store, waitMs: 30_000 })
    expect(lease.fence).toBeGreaterThan(first.fence as number)
    expect(await h.call({ op: 'check' })).toMatchObject({ held: false, aborted: true })
    await lease.release()
  })
})
