// Pooler detection against a real PgBouncer (transaction and session mode) in front of a cluster
// of this file's own, and the breakage that makes refusing a transaction pooler necessary.
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { claim, inspect } from '../../../lib/lease/postgres/calls.js'
import { detectPooler } from '../../../lib/lease/postgres/pooler.js'
import { migrate } from '../../../lib/lease/postgres/schema.js'
import { type Cluster, start, stop } from '../../../scripts/pg/cluster.mjs'
import { type PgBouncer, startPgBouncer } from '../../../scripts/pg/pgbouncer.mjs'

let cluster: Cluster
let txPool: PgBouncer
let sessionPool: PgBouncer
const clients = new Set<pg.Client>()

beforeAll(async () => {
  cluster = await start()
  txPool = await startPgBouncer(cluster, { mode: 'transaction' })
  sessionPool = await startPgBouncer(cluster, { mode: 'session' })
})
afterAll(async () => {
  await txPool?.stop()
  await sessionPool?.stop()
  await stop(cluster, { mode: 'immediate' })
})
afterEach(async () => {
  await Promise.all([...clients].map((c) => c.end().catch(() => undefined)))
  clients.clear()
})

async function connect(connectionString: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString })
  c.on('error', () => {})
  await c.connect()
  clients.add(c)
  return c
}

describe('detectPooler', () => {
  it('a direct connection is not pooled', async () => {
    const r = await detectPooler(await connect(cluster.connectionString))
    expect(r.pooled).toBe(false)
    expect(r.announcedPid).toBe(r.backendPid)
  })

  it('PgBouncer in transaction mode is detected', async () => {
    const r = await detectPooler(await connect(txPool.connectionString))
    expect(r.pooled).toBe(true)
    expect(r.announcedPid).not.toBe(r.backendPid)
  })

  it('PgBouncer in session mode is reported as pooled too (only the user can say which mode)', async () => {
    expect((await detectPooler(await connect(sessionPool.connectionString))).pooled).toBe(true)
  })
})

describe('why a transaction pooler is refused', () => {
  it("two clients share one server session, and a gone client's hold keeps a live-looking witness", async () => {
    const direct = await connect(cluster.connectionString)
    const schema = 'pooled'
    await migrate(direct, schema)
    const a = await connect(txPool.connectionString)
    const b = await connect(txPool.connectionString)
    const pa = await detectPooler(a)
    const pb = await detectPooler(b)
    // default_pool_size = 1: both clients run on the same server session.
    expect(pa.backendPid).toBe(pb.backendPid)
    const call = { key: 'k', limit: 1, ttlMs: 10_000, witness: 'session' as const, lockTimeoutMs: 10_000 }
    expect((await claim(a, schema, call)).outcome).toBe('granted')
    await a.end()
    clients.delete(a)
    // Client a is gone, but its session lock lives on in the pooled server session: the session
    // witness says alive, forever. (Hence: refuse, or witness 'none' with expiry only.)
    const seen = await inspect(direct, schema, 'k')
    expect(seen.holds.map((h) => h.state)).toEqual(['alive'])
    expect((await claim(b, schema, call)).outcome).toBe('busy')
  })
})
