// pruneLeaseKeys on the PostgreSQL store: removes keys with no hold and no live waiter that have
// been idle long enough, never a key a concurrent claim is using, and fences never go back.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, listLeaseKeys, pruneLeaseKeys, tryAcquireLease } from '../../../lib/index.js'
import { PostgresStore } from '../../../lib/lease/postgres/index.js'
import { type ClaimFault, functionsSql } from '../../../lib/lease/postgres/schema.js'
import { JsonChild, leaseLib } from '../../helpers/lease.js'
import { connect, connectionString, freshSchema, storesClosedAfterEach } from '../../helpers/pg.js'

type Opts = { connectionString: string; schema: string; ttlMs: number }
const track = storesClosedAfterEach()

function open(o: Opts): PostgresStore {
  return track(new PostgresStore(o))
}

async function setup(faults: readonly ClaimFault[] = []): Promise<Opts> {
  const admin = await connect()
  const schema = await freshSchema(admin)
  if (faults.length > 0) await admin.query(functionsSql(schema, faults))
  return { connectionString: connectionString(), schema, ttlMs: 120_000 }
}

/** Polls inspection until the key has `n` live waiters (bounded: a store without places fails here). */
async function untilWaiting(s: PostgresStore, key: string, n: number, maxMs = 15_000): Promise<void> {
  const end = performance.now() + maxMs
  while ((await inspectLeases({ key, store: s })).waiting !== n) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${n} waiters of ${key}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const newKey = (tag: string): string => `${tag}-${randomBytes(4).toString('hex')}`

describe('PostgreSQL store: prune', () => {
  it('removes idle keys only: not held ones, not ones with a live waiter, not recently used ones', async () => {
    const o = await setup()
    const s = open(o)
    const idle = newKey('idle')
    const held = newKey('held')
    const queued = newKey('queued')
    const used = await acquireLease({ key: idle, limit: 1, store: s })
    const before = used.fence
    await used.release()
    const h = await acquireLease({ key: held, limit: 1, store: s })
    const q1 = await acquireLease({ key: queued, limit: 2, store: s })
    const waiter = acquireLease({ key: queued, limit: 2, weight: 2, store: open(o), waitMs: 60_000 })
    waiter.catch(() => undefined)
    await untilWaiting(s, queued, 1)
    await q1.release()
    // Now `queued` has no hold for a moment at most; either way it is in use.

    // Used within the last hour: nothing goes.
    expect(await pruneLeaseKeys({ idleMs: 3_600_000, store: s })).toEqual({ dryRun: false, removed: [], kept: 3 })
    const dry = await pruneLeaseKeys({ idleMs: 0, store: s, dryRun: true })
    expect(dry.removed).toEqual([idle])
    expect(dry.dryRun).toBe(true)
    expect((await listLeaseKeys({ store: s })).sort()).toEqual([held, idle, queued].sort())
    const real = await pruneLeaseKeys({ idleMs: 0, store: s })
    expect(real.removed).toEqual([idle])
    expect(real.kept).toBe(2)
    expect((await listLeaseKeys({ store: s })).sort()).toEqual([held, queued].sort())
    // Fences come from one sequence per schema: a pruned key starts again above them.
    const again = await acquireLease({ key: idle, limit: 1, store: s })
    expect(again.fence).toBeGreaterThan(before)
    await again.release()
    await h.release()
    await (await waiter).release()
  })

  it('a dead waiter does not keep a key', async () => {
    const o = await setup()
    const s = open(o)
    const k = newKey('dead-waiter')
    const h = await acquireLease({ key: k, limit: 1, store: s })
    const c = new JsonChild('../postgres/fixtures/store-agent.mjs', [await leaseLib(), JSON.stringify(o)])
    await c.expect('ready')
    void c.call({ op: 'acquire', opts: { key: k, limit: 1, waitMs: 60_000 } }).catch(() => undefined)
    await untilWaiting(s, k, 1)
    await c.kill()
    // Its place stays in the table until a claim removes it, but no longer counts once its session is gone.
    await untilWaiting(s, k, 0)
    await h.release()
    expect((await pruneLeaseKeys({ idleMs: 0, store: s })).removed).toEqual([k])
  })

  async function raceRounds(o: Opts, rounds: number): Promise<{ broken: string[]; removedWhileClaimed: number }> {
    const s = open(o)
    const claimer = open(o)
    const admin = await connect()
    const broken: string[] = []
    let removedWhileClaimed = 0
    for (let i = 0; i < rounds; i++) {
      const k = newKey(`race${i}`)
      await (await acquireLease({ key: k, limit: 1, store: claimer })).release()
      // A claim and a prune of the same idle key at once, in either order.
      const [lease, report] = await Promise.all([
        acquireLease({ key: k, limit: 1, store: claimer, waitMs: 60_000 }),
        pruneLeaseKeys({ idleMs: 0, store: s }),
      ])
      if (report.removed.includes(k)) removedWhileClaimed++
      // The granted hold must still be the key's: its gate row exists and the hold counts.
      const gate = await admin.query(`SELECT 1 FROM "${o.schema}".gates WHERE key = $1`, [k])
      if (gate.rows.length !== 1) broken.push(`${k}: hold without its gate row`)
      if ((await tryAcquireLease({ key: k, limit: 1, store: s })) !== null) broken.push(`${k}: granted twice`)
      await lease.release()
    }
    return { broken, removedWhileClaimed }
  }

  it('never removes a key a concurrent claim is using', async () => {
    const o = await setup()
    const r = await raceRounds(o, 25)
    expect(r.broken).toEqual([])
  })

  /**
   * A claim lands exactly in prune's window between judging an idle key and deleting it: prune
   * (a test variant) pauses there, and the claim is sent once prune's backend is in that pause.
   */
  async function claimInPruneWindow(o: Opts): Promise<{ removed: string[]; gate: number; secondGrant: boolean }> {
    const s = open(o)
    const claimer = open(o)
    const admin = await connect()
    const k = newKey('window')
    await (await acquireLease({ key: k, limit: 1, store: claimer })).release()
    const pruning = pruneLeaseKeys({ idleMs: 0, store: s })
    const end = performance.now() + 15_000
    for (;;) {
      const r = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%.prune(%'`)
      if (r.rows.length > 0) break
      if (performance.now() > end) throw new Error('prune never paused')
      await new Promise((res) => setTimeout(res, 5))
    }
    const [lease, report] = await Promise.all([acquireLease({ key: k, limit: 1, store: claimer, waitMs: 60_000 }), pruning])
    const gate = (await admin.query(`SELECT 1 FROM "${o.schema}".gates WHERE key = $1`, [k])).rows.length
    const second = await tryAcquireLease({ key: k, limit: 1, store: s })
    await second?.release()
    await lease.release()
    return { removed: report.removed, gate, secondGrant: second !== null }
  }

  it('a claim in the window between judging and deleting a key waits for the gate, then recreates it', async () => {
    const r = await claimInPruneWindow(await setup(['prunePause']))
    expect(r.gate).toBe(1)
    expect(r.secondGrant).toBe(false)
  })

  it('negative control: a prune that ignores the gate removes the key under the claim', async () => {
    const r = await claimInPruneWindow(await setup(['pruneIgnoresGate']))
    expect(r.gate).toBe(0)
  })
})
