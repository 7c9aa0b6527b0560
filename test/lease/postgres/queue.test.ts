// Issue 10 on the PostgreSQL store: weighted holds, the key's queue (first come, first served
// across processes; `try` does not jump it; dead and aborted waiters leave it at once) and the
// takeover notice (each crashed holder is announced to exactly one later holder).
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { type Lease, acquireLease, inspectLeases, reclaimLeases, tryAcquireLease } from '../../../lib/index.js'
import { PostgresStore } from '../../../lib/lease/postgres/index.js'
import { type Interval, JsonChild, type Msg, leaseLib } from '../../helpers/lease.js'
import { connect, connectionString, freshSchema, pollUntil, storesClosedAfterEach } from '../../helpers/pg.js'

type Opts = { connectionString: string; schema: string; ttlMs: number }
const track = storesClosedAfterEach()

function open(o: Opts): PostgresStore {
  return track(new PostgresStore(o))
}

async function setup(): Promise<Opts> {
  const admin = await connect()
  // A TTL far beyond the test: only the session witness and the queue decide.
  return { connectionString: connectionString(), schema: await freshSchema(admin), ttlMs: 120_000 }
}

const newKey = (): string => `k-${randomBytes(4).toString('hex')}`


async function waiting(store: PostgresStore, key: string): Promise<number> {
  return (await inspectLeases({ key, store })).waiting
}

async function agentOn(o: Opts): Promise<JsonChild> {
  const c = new JsonChild('../postgres/fixtures/store-agent.mjs', [await leaseLib(), JSON.stringify(o)])
  await c.expect('ready')
  return c
}

/** Resolves with the settled value, or 'pending' if the promise has not settled by now. */
async function settled<T>(p: Promise<T>): Promise<T | 'pending'> {
  const marker = Symbol('pending')
  // A macrotask later: every reaction already queued has run.
  const r = await Promise.race([p, new Promise<typeof marker>((res) => setImmediate(() => res(marker)))])
  return r === marker ? 'pending' : (r as T)
}

function peakWeight(intervals: Array<Interval & { weight: number }>): number {
  const events: Array<[bigint, number]> = []
  for (const iv of intervals) {
    events.push([iv.start, iv.weight])
    events.push([iv.end, -iv.weight])
  }
  // At equal times an end sorts before a start: no overlap is claimed without proof.
  events.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]))
  let used = 0
  let peak = 0
  for (const [, d] of events) {
    used += d
    peak = Math.max(peak, used)
  }
  return peak
}

describe('PostgreSQL store: weighted holds', () => {
  it('grants only while the weights fit, and status and busy errors report them', async () => {
    const o = await setup()
    const k = newKey()
    const a = open(o)
    const b = open(o)
    const heavy = await acquireLease({ key: k, limit: 4, weight: 3, store: a })
    expect(heavy.weight).toBe(3)
    // 3 + 2 > 4: no; 3 + 1 = 4: yes.
    expect(await tryAcquireLease({ key: k, limit: 4, weight: 2, store: b })).toBeNull()
    const light = await tryAcquireLease({ key: k, limit: 4, weight: 1, store: b })
    expect(light?.weight).toBe(1)
    const st = await inspectLeases({ key: k, store: b })
    expect(st).toMatchObject({ active: 2, used: 4, waiting: 0 })
    expect(st.holders.map((h) => h.weight).sort()).toEqual([1, 3])
    const err = await acquireLease({ key: k, limit: 4, weight: 1, waitMs: 0, store: b }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'lease_busy', capacity: { active: 2, used: 4, limit: 4 } })
    await heavy.release()
    // A lowered limit: the remaining hold of weight 1 still counts.
    const excl = await tryAcquireLease({ key: k, limit: 2, weight: 2, store: a })
    expect(excl).toBeNull()
    await light?.release()
    const writer = await tryAcquireLease({ key: k, limit: 2, weight: 2, store: a })
    expect(writer?.weight).toBe(2)
    await writer?.release()
  })

  it('never over-admits under contention: the logged weights never sum above the limit', async () => {
    const o = await setup()
    const k = newKey()
    const limit = 4
    const intervals: Array<Interval & { weight: number }> = []
    const worker = async (id: number): Promise<void> => {
      const s = open(o)
      for (let round = 0; round < 8; round++) {
        const weight = 1 + ((id + round) % limit)
        const lease = await acquireLease({ key: k, limit, weight, store: s, waitMs: 60_000, fair: round % 2 === 0 })
        const start = process.hrtime.bigint()
        await new Promise((r) => setImmediate(r))
        const end = process.hrtime.bigint()
        intervals.push({ who: `w${id}`, start, end, weight })
        await lease.release()
      }
    }
    await Promise.all([0, 1, 2, 3, 4].map(worker))
    expect(intervals).toHaveLength(40)
    expect(peakWeight(intervals)).toBeLessThanOrEqual(limit)
  })
})

describe('PostgreSQL store: the queue (first come, first served)', () => {
  it('grants waiters of several processes in the order they started waiting', async () => {
    const o = await setup()
    const k = newKey()
    const s = open(o)
    let held: Lease = await acquireLease({ key: k, limit: 1, store: s })
    const children: JsonChild[] = []
    const replies: Array<Promise<Msg>> = []
    for (let i = 0; i < 4; i++) {
      const c = await agentOn(o)
      children.push(c)
      const reply = c.call({ op: 'acquire', opts: { key: k, limit: 1, waitMs: 60_000 } })
      // A failed test kills the children under it: that rejection is not this test's finding.
      reply.catch(() => undefined)
      replies.push(reply)
      // Arrival is sequenced: the next waiter starts only once this one holds its place.
      await pollUntil(`waiter ${i} queued`, async () => (await waiting(s, k)) === i + 1)
    }
    // A free slot would go to the head, never to a claim that does not queue.
    await held.release()
    for (let i = 0; i < 4; i++) {
      const [winner, msg] = await Promise.race(replies.map((p, j) => p.then((m) => [j, m] as const)))
      expect(winner, `grant ${i}`).toBe(i)
      expect(msg).toMatchObject({ ev: 'acquired' })
      replies[winner] = new Promise<never>(() => undefined)
      expect(await (children[i] as JsonChild).call({ op: 'release' })).toMatchObject({ ok: true })
    }
    held = await acquireLease({ key: k, limit: 1, store: s })
    expect((await inspectLeases({ key: k, store: s })).waiting).toBe(0)
    await held.release()
  })

  it('a heavy head is not starved by light waiters, and try does not jump the queue', async () => {
    const o = await setup()
    const k = newKey()
    const s0 = open(o)
    const sa = open(o)
    const sb = open(o)
    const h1 = await acquireLease({ key: k, limit: 2, store: s0 })
    const h2 = await acquireLease({ key: k, limit: 2, store: s0 })
    const heavy = acquireLease({ key: k, limit: 2, weight: 2, store: sa, waitMs: 60_000 })
    heavy.catch(() => undefined)
    await pollUntil('the heavy waiter queued', async () => (await waiting(s0, k)) === 1)
    await h1.release()
    // One unit is free and would fit a light claim, but the heavy waiter came first.
    expect(await tryAcquireLease({ key: k, limit: 2, store: sb })).toBeNull()
    const light = acquireLease({ key: k, limit: 2, store: sb, waitMs: 60_000 })
    light.catch(() => undefined)
    await pollUntil('the light waiter queued behind it', async () => (await waiting(s0, k)) === 2)
    expect(await settled(light)).toBe('pending')
    await h2.release()
    const hl = await heavy
    expect(await settled(light)).toBe('pending')
    const st = await inspectLeases({ key: k, store: s0 })
    expect(st).toMatchObject({ active: 1, used: 2, waiting: 1 })
    await hl.release()
    await (await light).release()
  })

  it('fair: false ignores the queue (barging), and takes no place', async () => {
    const o = await setup()
    const k = newKey()
    const s0 = open(o)
    const h1 = await acquireLease({ key: k, limit: 2, store: s0 })
    const h2 = await acquireLease({ key: k, limit: 2, store: s0 })
    const heavy = acquireLease({ key: k, limit: 2, weight: 2, store: open(o), waitMs: 60_000 })
    heavy.catch(() => undefined)
    await pollUntil('the heavy waiter queued', async () => (await waiting(s0, k)) === 1)
    await h1.release()
    const barger = await tryAcquireLease({ key: k, limit: 2, store: open(o), fair: false })
    expect(barger).not.toBeNull()
    expect(await waiting(s0, k)).toBe(1)
    await barger?.release()
    await h2.release()
    await (await heavy).release()
  })

  it('a SIGKILLed waiter leaves the queue at once and never blocks those behind it', async () => {
    const o = await setup()
    const k = newKey()
    const s = open(o)
    const held = await acquireLease({ key: k, limit: 1, store: s })
    const doomed = await agentOn(o)
    void doomed.call({ op: 'acquire', opts: { key: k, limit: 1, waitMs: 60_000 } }).catch(() => undefined)
    await pollUntil('the doomed waiter queued', async () => (await waiting(s, k)) === 1)
    const behind = acquireLease({ key: k, limit: 1, store: open(o), waitMs: 60_000 })
    behind.catch(() => undefined)
    await pollUntil('a waiter queued behind it', async () => (await waiting(s, k)) === 2)
    await doomed.kill()
    // Judged by its session witness: gone as soon as its session is.
    await pollUntil('the dead place no longer counted', async () => (await waiting(s, k)) === 1)
    await held.release()
    const lease = await behind
    expect(await waiting(s, k)).toBe(0)
    await lease.release()
  })

  it('an aborted waiter gives its place up before acquire rejects', async () => {
    const o = await setup()
    const k = newKey()
    const s = open(o)
    const held = await acquireLease({ key: k, limit: 1, store: s })
    const ac = new AbortController()
    const aborted = acquireLease({ key: k, limit: 1, store: open(o), waitMs: 60_000, signal: ac.signal })
    aborted.catch(() => undefined)
    await pollUntil('the waiter queued', async () => (await waiting(s, k)) === 1)
    const behind = acquireLease({ key: k, limit: 1, store: open(o), waitMs: 60_000 })
    behind.catch(() => undefined)
    await pollUntil('a second waiter queued', async () => (await waiting(s, k)) === 2)
    ac.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'aborted' })
    expect(await waiting(s, k)).toBe(1)
    await held.release()
    await (await behind).release()
    // And a deadline: the place goes with the lease_busy error.
    const h = await acquireLease({ key: k, limit: 1, store: s })
    await expect(acquireLease({ key: k, limit: 1, store: open(o), waitMs: 300 })).rejects.toMatchObject({ code: 'lease_busy' })
    expect(await waiting(s, k)).toBe(0)
    await h.release()
  })
})

describe('PostgreSQL store: takeover notice', () => {
  it('each SIGKILLed holder is announced to exactly one later grant, across racing claimers and a sweep', async () => {
    const o = await setup()
    const k = newKey()
    const s = open(o)
    // A holder that released leaves no notice.
    const clean = await acquireLease({ key: k, limit: 3, store: s })
    await clean.release()
    const after = await acquireLease({ key: k, limit: 3, store: s })
    expect(after.recovered).toBeNull()
    await after.release()

    // Three holders at once, then all killed: three notices for whoever comes next.
    const dead: Msg[] = []
    const doomed = await Promise.all([0, 1, 2].map(() => agentOn(o)))
    for (const [i, c] of doomed.entries()) {
      const m = await c.call({ op: 'acquire', opts: { key: k, limit: 3, weight: 1, metadata: { job: `j${i}` } } })
      expect(m).toMatchObject({ ev: 'acquired', recovered: null })
      dead.push(m)
    }
    await Promise.all(doomed.map((c) => c.kill()))
    const racers = await Promise.all([0, 1, 2, 3].map(() => agentOn(o)))
    const recovered: Array<Record<string, unknown>> = []
    let grants = 0
    const race = racers.map(async (c) => {
      for (let round = 0; round < 3; round++) {
        const m = await c.call({ op: 'acquire', opts: { key: k, limit: 3, waitMs: 60_000 } })
        expect(m).toMatchObject({ ev: 'acquired' })
        grants++
        if (m.recovered !== null) recovered.push(m.recovered as Record<string, unknown>)
        expect(await c.call({ op: 'release' })).toMatchObject({ ok: true })
      }
    })
    const sweeps = (async () => {
      for (let i = 0; i < 5; i++) await reclaimLeases({ key: k, store: s })
    })()
    await Promise.all([...race, sweeps])
    expect(grants).toBe(12)
    expect(recovered.map((r) => r.fence).sort()).toEqual(dead.map((d) => d.fence).sort())
    for (const d of dead) {
      const r = recovered.find((x) => x.fence === d.fence)
      expect(r).toMatchObject({ pid: d.pid, slot: d.slot, weight: 1, hostname: expect.any(String) })
      expect(typeof r?.acquiredAt).toBe('string')
      expect(Number.isNaN(Date.parse(String(r?.acquiredAt)))).toBe(false)
    }
    expect(recovered.map((r) => (r.metadata as { job: string }).job).sort()).toEqual(['j0', 'j1', 'j2'])
    // None left for later grants.
    const last = await acquireLease({ key: k, limit: 3, store: s })
    expect(last.recovered).toBeNull()
    await last.release()
  })
})
