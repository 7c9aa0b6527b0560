// The holder session's own server settings, on a server configured to drop idle sessions after
// 300 ms (a cluster of this file's own): the store sets idle_session_timeout = 0 on its holder
// session, so a hold survives idle gaps between renewals; a store without its settings (seam)
// loses its session, and with it the hold, at the first gap.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease } from '../../../lib/index.js'
import { type Cluster, start } from '../../../scripts/pg/cluster.mjs'
import { removeLeaseLib } from '../../helpers/lease.js'
import { connect } from '../../helpers/pg.js'
import { cleanupFaults, key, open, ownCluster, pollUntilAsync, setup } from './fault-kit.js'

afterEach(cleanupFaults)
afterAll(removeLeaseLib)

async function scenario(withSettings: boolean): Promise<{ renewals: number; reason: unknown }> {
  const cluster: Cluster = ownCluster(await start({ settings: { idle_session_timeout: '300ms' } }))
  const o = await setup(cluster.connectionString, { ttlMs: 3000 })
  const store = open(o, withSettings ? {} : { holderSettings: () => ({}) })
  const k = key()
  const lease = await acquireLease({ key: k, limit: 1, store })
  const admin = await connect(cluster.connectionString)
  // Renewals come every second, each after an idle gap longer than the server's 300 ms.
  let renewals = 0
  await pollUntilAsync('two renewals or the hold lost', async () => {
    const r = await admin.query<{ n: string }>(`SELECT renew_count::text AS n FROM "${o.schema}".holds WHERE key = $1`, [k])
    renewals = Number(r.rows[0]?.n ?? -1)
    return renewals >= 2 || lease.signal.aborted
  })
  const reason: unknown = lease.signal.aborted ? lease.signal.reason : null
  await lease.release()
  return { renewals, reason }
}

describe('PostgreSQL store: the holder session’s settings', () => {
  it('a hold outlives idle gaps on a server that drops idle sessions after 300 ms', async () => {
    const r = await scenario(true)
    expect(r.reason).toBeNull()
    expect(r.renewals).toBeGreaterThanOrEqual(2)
  })

  it('negative twin: without idle_session_timeout = 0 the server drops the holder session and the hold is lost', async () => {
    expect((await scenario(false)).reason).toBe('connection_lost')
  })

  it('a waiter’s listener and session-lock sessions outlive idle gaps too (no reconnecting while it waits)', async () => {
    const cluster: Cluster = ownCluster(await start({ settings: { idle_session_timeout: '300ms' } }))
    const o = await setup(cluster.connectionString, { ttlMs: 3000 })
    const k = key()
    const lease = await acquireLease({ key: k, limit: 1, store: open(o) })
    const waiting = acquireLease({ key: k, limit: 1, store: open(o), waitMs: 30_000 })
    const admin = await connect(cluster.connectionString)
    const sessions = async (): Promise<string[]> => {
      const r = await admin.query<{ s: string }>(
        `SELECT application_name || ' ' || pid AS s FROM pg_stat_activity WHERE application_name LIKE 'proclease listener%' OR application_name LIKE 'proclease waiter%' ORDER BY 1`,
      )
      return r.rows.map((x) => x.s)
    }
    let first: string[] = []
    await pollUntilAsync('the waiter’s listener and session-lock sessions', async () => {
      first = await sessions()
      return first.length === 2
    })
    // Two renewals of the holder later (each after a gap > 300 ms), the same two sessions.
    const renewals = async (): Promise<number> => {
      const r = await admin.query<{ n: string }>(`SELECT renew_count::text AS n FROM "${o.schema}".holds WHERE key = $1`, [k])
      return Number(r.rows[0]?.n ?? -1)
    }
    const start0 = await renewals()
    await pollUntilAsync('two more renewals', async () => (await renewals()) >= start0 + 2)
    expect(await sessions()).toEqual(first)
    await lease.release()
    await (await waiting).release()
  })
})