// A grant must survive a server crash once the claimer has seen it, whatever the server's
// synchronous_commit: otherwise recovery forgets the fence sequence's advance and the hold's row,
// and the next claims hand out fences already given (seen in the chaos stress on PostgreSQL, seed 7,
// whose throwaway cluster runs with synchronous_commit = off, as some production servers do).
import { afterAll, beforeAll, expect, it } from 'vitest'
import { acquireLease, inspectLeases } from '../../../lib/index.js'
import { postgresStore } from '../../../lib/lease/postgres/index.js'
import { type Cluster, restart, start, stop } from '../../../scripts/pg/cluster.mjs'
import { closeClients, connect } from '../../helpers/pg.js'

let cluster: Cluster

beforeAll(async () => {
  cluster = await start()
})
afterAll(async () => {
  await closeClients()
  await stop(cluster, { mode: 'immediate' })
})

it('fences never repeat and granted holds stay after a crash of a server with synchronous_commit = off', async () => {
  const admin = await connect(cluster.connectionString)
  expect((await admin.query<{ s: string }>(`SELECT current_setting('synchronous_commit') AS s`)).rows[0]?.s).toBe('off')
  const o = { connectionString: cluster.connectionString, schema: 'durable', ttlMs: 60_000 }
  let highest = 0
  for (let round = 0; round < 5; round++) {
    const key = `k${round}`
    const store = postgresStore(o)
    for (let i = 0; i < 3; i++) {
      const lease = await acquireLease({ key, limit: 10, store })
      expect(lease.fence).toBeGreaterThan(highest)
      highest = lease.fence
    }
    // A crash right after the grants were answered.
    await restart(cluster, { mode: 'immediate' })
    await store.close()
    const after = postgresStore(o)
    try {
      // The holds are still there (no witness speaks for them after a restart: occupied).
      const st = await inspectLeases({ key, store: after })
      expect(st.active).toBe(3)
      const next = await acquireLease({ key: `other${round}`, limit: 1, store: after })
      expect(next.fence).toBeGreaterThan(highest)
      highest = next.fence
      await next.release()
    } finally {
      await after.close()
    }
  }
})
