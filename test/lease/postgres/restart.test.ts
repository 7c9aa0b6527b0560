// Server restarts and pauses, on a cluster of this file's own (the shared one must not restart
// under other test files): every session lock is gone after a restart, so only observed expiry
// may reclaim holds from before it; fences never go back, even after a crash restart.
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type ClaimCall, type ClaimResult, claim, inspect } from '../../../lib/lease/postgres/calls.js'
import { type ClaimFault, functionsSql, migrate } from '../../../lib/lease/postgres/schema.js'
import { pollUntil } from '../../helpers/kernel.js'
import { type Cluster, pause, readPostmasterPid, restart, resume, serverPids, start, stop } from '../../../scripts/pg/cluster.mjs'

let cluster: Cluster
const clients = new Set<pg.Client>()

beforeAll(async () => {
  // The test server commits asynchronously (synchronous_commit=off). These settings keep such
  // commits in WAL buffers until a crash loses them, so that a function forgetting to make its
  // commit durable is caught every time, not by luck.
  cluster = await start({ settings: { wal_writer_delay: '10000ms', wal_writer_flush_after: '0', bgwriter_lru_maxpages: '0' } })
})
afterAll(async () => {
  await stop(cluster, { mode: 'immediate' })
})
afterEach(async () => {
  await Promise.all([...clients].map((c) => c.end().catch(() => undefined)))
  clients.clear()
})

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: cluster.connectionString })
  // The restart kills this session; the client reports it as an 'error' event we expect.
  c.on('error', () => {})
  await c.connect()
  clients.add(c)
  return c
}

function call(key: string, extra: Partial<ClaimCall> = {}): ClaimCall {
  return { key, limit: 1, ttlMs: 10_000, witness: 'session', lockTimeoutMs: 10_000, ...extra }
}

function granted(r: ClaimResult): Extract<ClaimResult, { outcome: 'granted' }> {
  if (r.outcome !== 'granted') throw new Error(`expected granted, got ${JSON.stringify(r)}`)
  return r
}

let n = 0
async function schemaWith(c: pg.Client, faults: ClaimFault[]): Promise<string> {
  const schema = `r_${process.pid}_${n++}`
  await migrate(c, schema)
  if (faults.length > 0) await c.query(functionsSql(schema, faults))
  return schema
}

describe('server restart', () => {
  async function scenario(faults: ClaimFault[], mode: 'fast' | 'immediate'): Promise<string[]> {
    const setup = await connect()
    const schema = await schemaWith(setup, faults)
    const holder = await connect()
    const h = granted(await claim(holder, schema, call('k')))
    await restart(cluster, { mode })
    const c = await connect()
    const out: string[] = []
    const seen = await inspect(c, schema, 'k')
    out.push(`${seen.holds[0]?.state} sessionWitness ${String(seen.holds[0]?.sessionWitness)}`)
    const busy = await claim(c, schema, call('k'))
    out.push(busy.outcome)
    const r = await claim(c, schema, call('k', { expired: [{ token: h.token, renewCount: '0' }] }))
    out.push(`${r.outcome} reclaimed ${r.reclaimed}`)
    if (r.outcome === 'granted') out.push(BigInt(r.fence) > BigInt(h.fence) ? 'fence up' : `fence ${r.fence} <= ${h.fence}`)
    return out
  }

  it('after a fast restart a pre-restart hold is reclaimed by observed expiry only; fences go up', async () => {
    expect(await scenario([], 'fast')).toEqual(['unknown sessionWitness false', 'busy', 'granted reclaimed 1', 'fence up'])
  })

  it('the same after a crash (immediate) restart, with recovery', async () => {
    expect(await scenario([], 'immediate')).toEqual(['unknown sessionWitness false', 'busy', 'granted reclaimed 1', 'fence up'])
  })

  it('negative control: reclaiming on suspicion takes the pre-restart hold at once', async () => {
    expect((await scenario(['reclaimOnSuspicion'], 'fast'))[1]).toBe('granted')
  })

  async function fencesAcrossCrashes(faults: ClaimFault[]): Promise<string[]> {
    const setup = await connect()
    const schema = await schemaWith(setup, faults)
    // The schema itself must survive the first crash.
    await setup.query('CHECKPOINT')
    const fences: string[] = []
    for (let i = 0; i < 3; i++) {
      const c = await connect()
      for (let j = 0; j < 3; j++) fences.push(granted(await claim(c, schema, call(`f${i}${j}`))).fence)
      await restart(cluster, { mode: 'immediate' })
    }
    return fences
  }

  function increasing(fences: string[]): boolean {
    return fences.every((f, i) => i === 0 || BigInt(f) > BigInt(fences[i - 1] as string))
  }

  it('fences stay strictly increasing across repeated crash restarts', async () => {
    const fences = await fencesAcrossCrashes([])
    expect(increasing(fences), fences.join(' ')).toBe(true)
  })

  it('negative control: with asynchronous commits a crash hands out fences again', async () => {
    const fences = await fencesAcrossCrashes(['asyncCommit'])
    expect(increasing(fences), fences.join(' ')).toBe(false)
  })
})

describe('cluster helper', () => {
  it('pause stops the server processes and resume brings them back', async () => {
    const c = await connect()
    const pids = serverPids(cluster)
    expect(pids[0]).toBe(readPostmasterPid(cluster.dataDir)?.pid)
    const state = (pid: number): string => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    }
    pause(cluster)
    try {
      // SIGSTOP is delivered asynchronously: wait for each process to show it.
      await pollUntil('every server process to stop', () => pids.every((pid) => state(pid) === 'T'))
    } finally {
      resume(cluster)
    }
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
  })
})
