// One conformance suite for every lease store (STYLE §2.3): the invariants S1–S10 of
// lib/lease/store.ts, driven through the public API and the engine over a caller-supplied store.
// describeStore(target) runs it for one store configuration; each target file is one line.
// Every safety check has a faulty twin: the same check run against target.faulty(...) must fail,
// proving it can. Optional abilities keep their place: a store without one is checked to lack it,
// with the reason in the test's title. Holders are real processes for stores shared across
// processes (agents open the store from its JSON spec), simulated ones for the in-memory store.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, inspectLeases, listLeaseKeys, reclaimLeases, tryAcquireLease, withLease } from '../../lib/index.js'
import { type Lease, acquireWith, leaseInternals, selfHolder } from '../../lib/lease/engine.js'
import { type LeaseOptions, normalizeOptions } from '../../lib/lease/options.js'
import type { LeaseStore, LostReason } from '../../lib/lease/store.js'
import { hostIdentity } from '../../lib/probes.js'
import { type Interval, JsonChild, type Msg, cleanup, leaseLib, peakConcurrency, removeLeaseLib, testSignal } from '../helpers/lease.js'
import type { Holder } from './holders.js'
import type { Fault, Peek, StoreTarget } from './target.js'

const LOST_REASONS: readonly LostReason[] = ['expired', 'connection_lost', 'lost']

/** The LeaseError a promise rejects with (fails if it resolves or rejects with anything else). */
async function leaseError(p: Promise<unknown>): Promise<LeaseError> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${String(v)}`)
    },
    (e: unknown) => e,
  )
  if (!(err instanceof LeaseError)) throw new Error(`expected a LeaseError, got ${String(err)}`, { cause: err })
  return err
}

function granted(m: Msg): Msg & { slot: number; fence: number } {
  if (m.ev !== 'acquired') throw new Error(`expected a grant, got ${JSON.stringify(m)}`)
  return m as Msg & { slot: number; fence: number }
}

interface Run {
  /** Logged inside each true hold (for overlap); `asked`/`done` bound it from outside (for fence order). */
  intervals: Array<Interval & { fence: number; asked: bigint; done: bigint }>
  busy: number
  lost: number
  fences: number[]
}

/**
 * Fences are unique, and a grant that certainly came after another's release (its acquire was
 * called after the other's release had returned) carries a larger fence. Logged grant times are
 * not enough: an answer can reach its holder after a later grant's holder has come and gone.
 * Returns the number of ordered pairs checked.
 */
function checkFences(run: Run): number {
  expect(new Set(run.fences).size).toBe(run.fences.length)
  const byRelease = [...run.intervals].sort((a, b) => (a.done < b.done ? -1 : a.done > b.done ? 1 : 0))
  let pairs = 0
  for (const later of run.intervals) {
    for (const earlier of byRelease) {
      if (earlier.done >= later.asked) break
      pairs++
      if (earlier.fence >= later.fence) throw new Error(`fence ${later.fence} granted after ${earlier.fence} was released`)
    }
  }
  return pairs
}

/**
 * A test of an optional ability: it runs where the store has it, and otherwise keeps its place as
 * a skipped test whose title says why (never a silent skip).
 */
function gated(has: boolean, title: string, reason: string, fn: () => Promise<void>): void {
  if (has) it(title, fn)
  else it.skip(`${title} — not this store: ${reason}`, () => {})
}

export function describeStore<S extends object>(target: StoreTarget<S>): void {
  const caps = target.capabilities
  const opened: LeaseStore[] = []

  /** A store of this process on `spec`, closed after the test. */
  function open(spec: S): LeaseStore {
    const s = target.open(spec)
    opened.push(s)
    return s
  }

  async function setup(): Promise<{ spec: S; store: LeaseStore; holder: () => Promise<Holder> }> {
    const spec = await target.spec()
    return { spec, store: open(spec), holder: target.holders(spec) }
  }

  async function holders(make: () => Promise<Holder>, n: number): Promise<Holder[]> {
    return Promise.all(Array.from({ length: n }, () => make()))
  }

  /**
   * Contenders cycling acquire -> hold -> release, each logging its hold inside the real one (after
   * acquire returned, before release was called) on CLOCK_MONOTONIC, comparable across processes.
   */
  async function contend(spec: S, o: { procs: number; limit: number; cycles: number; holdMs: number }): Promise<Run> {
    const key = 'peak'
    const run: Run = { intervals: [], busy: 0, lost: 0, fences: [] }
    if (target.crossProcess) {
      const lib = await leaseLib()
      const cfg = { spec, key, limit: o.limit, cycles: o.cycles, holdMs: o.holdMs }
      const kids = Array.from({ length: o.procs }, () => new JsonChild('contender.mjs', [lib, JSON.stringify(cfg)]))
      await Promise.all(kids.map((k) => k.expect('ready')))
      for (const k of kids) k.send('go')
      await Promise.all(
        kids.map(async (k, n) => {
          let open: { t: bigint; asked: bigint; fence: number } | null = null
          for (;;) {
            const m = await k.next()
            if (m.ev === 'acq') {
              expect(open).toBeNull()
              open = { t: BigInt(m.t as string), asked: BigInt(m.asked as string), fence: m.fence as number }
              run.fences.push(m.fence as number)
            } else if (m.ev === 'rel') {
              if (open === null) throw new Error('release logged without an acquire')
              run.intervals.push({ who: `p${n}`, start: open.t, end: BigInt(m.t as string), fence: open.fence, asked: open.asked, done: BigInt(m.done as string) })
              open = null
            } else if (m.ev === 'done') {
              run.busy += m.busy as number
              run.lost += m.lost as number
              return
            } else {
              throw new Error(`unexpected ${JSON.stringify(m)}; stderr: ${k.stderr}`)
            }
          }
        }),
      )
      return run
    }
    await Promise.all(
      Array.from({ length: o.procs }, async (_, n) => {
        const store = open(spec)
        const opts = normalizeOptions({ key, limit: o.limit, store, waitMs: 30_000 })
        for (let i = 0; i < o.cycles; i++) {
          const asked = process.hrtime.bigint()
          const lease = (await acquireWith(store, opts, 'wait', { onBusy: () => run.busy++ })) as Lease
          const start = process.hrtime.bigint()
          run.fences.push(lease.fence)
          await new Promise((r) => setTimeout(r, o.holdMs))
          const end = process.hrtime.bigint()
          if (!(await lease.release())) run.lost++
          run.intervals.push({ who: `c${n}`, start, end, fence: lease.fence, asked, done: process.hrtime.bigint() })
          await new Promise((r) => setImmediate(r))
        }
      }),
    )
    return run
  }

  describe(`conformance: ${target.name}`, () => {
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
      await cleanup()
    })
    afterAll(removeLeaseLib)

    describe('S1 bound under contention (independent interval check)', () => {
      it('never more than the limit while 6 contenders cycle on 2 slots', async () => {
        const run = await contend(await target.spec(), { procs: 6, limit: 2, cycles: 12, holdMs: 5 })
        expect(run.intervals).toHaveLength(6 * 12)
        const peak = peakConcurrency(run.intervals)
        expect(peak).toBeLessThanOrEqual(2)
        // The run proved something only if the key was really contended.
        expect(run.busy).toBeGreaterThan(0)
        expect(peak).toBe(2)
        expect(run.lost).toBe(0)
        expect(checkFences(run)).toBeGreaterThan(0)
      })

      it('as a mutex (limit 1): one holder at a time, fences increasing in grant order', async () => {
        const run = await contend(await target.spec(), { procs: 4, limit: 1, cycles: 8, holdMs: 1 })
        expect(peakConcurrency(run.intervals)).toBe(1)
        expect(run.busy).toBeGreaterThan(0)
        const fences = [...run.intervals].sort((a, b) => (a.start < b.start ? -1 : 1)).map((iv) => iv.fence)
        for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number)
        checkFences(run)
      })

      it('faulty twin (overAdmit): the same check catches one holder too many', async () => {
        // Six contenders on a key that (wrongly) admits three: with holds of 15 ms three overlap in
        // practically every run; a rerun or two absorbs a pathologically starved machine.
        let peak = 0
        for (let attempt = 0; attempt < 3 && peak <= 2; attempt++) {
          const run = await contend(target.faulty(await target.spec(), 'overAdmit'), { procs: 6, limit: 2, cycles: 6, holdMs: 15 })
          peak = peakConcurrency(run.intervals)
        }
        expect(peak).toBeGreaterThan(2)
      })
    })

    describe('S1 lowered limits: holds above a lowered limit count', () => {
      const KEY = 'limits'

      async function threeHolders(make: () => Promise<Holder>): Promise<Holder[]> {
        const hs = await holders(make, 3)
        // One after another, so holder n has slot n.
        for (const [n, h] of hs.entries()) expect(granted(await h.acquire({ key: KEY, limit: 3 })).slot).toBe(n)
        return hs
      }

      it('blocks new claims until the holders drop below the lowered limit', async () => {
        const { store, holder } = await setup()
        const hs = await threeHolders(holder)
        const low = { key: KEY, limit: 1, store }
        expect(await tryAcquireLease(low)).toBeNull()
        // A waiter started now must be granted only after the last of the three released.
        let gotIt = false
        const waiting = acquireLease({ ...low, waitMs: 20_000, signal: testSignal() }).then((l) => {
          gotIt = true
          return l
        })
        waiting.catch(() => {}) // aborted at cleanup if this test fails early
        for (const [n, h] of hs.entries()) {
          expect(await h.release()).toBe(true)
          if (n < 2) {
            expect(await tryAcquireLease(low)).toBeNull()
            if (n === 0) expect(await tryAcquireLease({ ...low, limit: 2 })).toBeNull()
            expect(gotIt).toBe(false)
            expect((await inspectLeases({ key: KEY, store })).active).toBe(2 - n)
          }
        }
        const lease = await waiting
        expect(lease.slot).toBe(0)
        expect(await tryAcquireLease(low)).toBeNull()
        expect(await lease.release()).toBe(true)
      })

      /** Two holders remain in slots 1 and 2 of a limit-3 key: may `mine` take a slot under limit 1? */
      async function admitsUnderLoweredLimit(fault: Fault | null): Promise<boolean> {
        const { spec, holder } = await setup()
        const hs = await threeHolders(holder)
        expect(await hs[0]!.release()).toBe(true)
        const mine = open(fault ? target.faulty(spec, fault) : spec)
        const lease = await tryAcquireLease({ key: KEY, limit: 1, store: mine })
        await lease?.release()
        return lease !== null
      }

      it('two holders above a lowered limit of 1 keep the key full', async () => {
        expect(await admitsUnderLoweredLimit(null)).toBe(false)
      })

      it('faulty twin (countByIndex): the same check catches a count of slots below the limit only', async () => {
        expect(await admitsUnderLoweredLimit('countByIndex')).toBe(true)
      })

      it('a limit of 2 admits once two of three have released', async () => {
        const { store, holder } = await setup()
        const hs = await threeHolders(holder)
        const two = { key: KEY, limit: 2, store }
        expect(await tryAcquireLease(two)).toBeNull()
        await hs[2]!.release()
        expect(await tryAcquireLease(two)).toBeNull()
        await hs[0]!.release()
        const lease = await tryAcquireLease(two)
        expect(lease?.slot).toBe(0)
        expect(await tryAcquireLease(two)).toBeNull()
        await lease?.release()
      })
    })

    describe('S2 proof-only reclaim', () => {
      const KEY = 'crash-key'

      it('a SIGKILLed holder frees exactly its own slot; the survivor is untouched', async () => {
        const { spec, store, holder } = await setup()
        const [a, b] = await holders(holder, 2)
        const ga = granted(await a!.acquire({ key: KEY, limit: 2 }))
        const gb = granted(await b!.acquire({ key: KEY, limit: 2 }))
        await a!.kill()

        const st = await inspectLeases({ key: KEY, store, verbose: true })
        expect(st.holders.find((h) => h.slot === gb.slot)).toMatchObject({ pid: b!.pid, state: 'alive', fence: gb.fence })
        expect(st.holders.find((h) => h.slot === ga.slot)?.state).toBe('dead')

        const lease = await acquireLease({ key: KEY, limit: 2, store, waitMs: 10_000 })
        expect(lease.slot).toBe(ga.slot)
        expect(lease.fence).toBeGreaterThan(gb.fence)
        expect(await target.peek(spec, KEY)).toEqual({ holds: 2, fences: [gb.fence, lease.fence] })
        const after = await inspectLeases({ key: KEY, store, verbose: true })
        expect(after.active).toBe(2)
        expect(after.holders.find((h) => h.slot === gb.slot)).toMatchObject({ pid: b!.pid, state: 'alive' })
        expect(await tryAcquireLease({ key: KEY, limit: 2, store })).toBeNull()
        expect(await lease.release()).toBe(true)
        expect(await b!.release()).toBe(true)
      })

      gated(caps.stoppedHolderKept, 'a SIGSTOPped holder keeps its slot while stopped, and loses it once SIGKILLed', 'its holds expire (its TTL tests belong to the target)', async () => {
        const { spec, store, holder } = await setup()
        const a = await holder()
        granted(await a.acquire({ key: KEY, limit: 1 }))
        await a.stop()
        expect(await tryAcquireLease({ key: KEY, limit: 1, store })).toBeNull()
        const st = await inspectLeases({ key: KEY, store, verbose: true })
        expect(st.active).toBe(1)
        expect(st.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: a.pid })])
        // The failed claim judged it and removed nothing.
        expect((await target.peek(spec, KEY)).holds).toBe(1)
        await a.kill()
        const lease = await acquireLease({ key: KEY, limit: 1, store, waitMs: 10_000 })
        expect(lease.slot).toBe(0)
        expect(await lease.release()).toBe(true)
      })

      /** A live holder no witness can prove alive or gone holds the only slot: does a claim take it? */
      async function takesUnverifiable(fault: Fault | null): Promise<boolean> {
        const { spec, holder } = await setup()
        const a = await holder()
        granted(await a.acquire({ key: KEY, limit: 1 }, { holder: target.unverifiableHolder ?? {} }))
        const mine = open(fault ? target.faulty(spec, fault) : spec)
        const lease = await tryAcquireLease({ key: KEY, limit: 1, store: mine })
        if (lease === null) {
          expect((await target.peek(spec, KEY)).holds).toBe(1)
          const swept = await reclaimLeases({ key: KEY, store: mine })
          expect(swept.reclaimed).toEqual([])
          expect(swept.status.active).toBe(1)
        }
        await lease?.release()
        return lease !== null
      }

      const unverifiable = target.unverifiableHolder !== null
      gated(unverifiable, 'a live holder no witness can prove gone is never reclaimed', 'every holder can be judged', async () => {
        expect(await takesUnverifiable(null)).toBe(false)
      })
      gated(unverifiable, 'faulty twin (reclaimOnSuspicion): the same check catches a reclaim on suspicion', 'every holder can be judged', async () => {
        expect(await takesUnverifiable('reclaimOnSuspicion')).toBe(true)
      })

      it('inspect changes nothing; sweep removes exactly the proven gone; a dry run only reports (S8)', async () => {
        const { spec, store, holder } = await setup()
        const [a, b] = await holders(holder, 2)
        const ga = granted(await a!.acquire({ key: KEY, limit: 2 }))
        const gb = granted(await b!.acquire({ key: KEY, limit: 2 }))
        await a!.kill()
        const st = await inspectLeases({ key: KEY, store })
        expect(st).toMatchObject({ key: KEY, active: 1 })
        expect((await target.peek(spec, KEY)).holds).toBe(2)
        const dry = await reclaimLeases({ key: KEY, store, dryRun: true, verbose: true })
        expect(dry.reclaimed).toEqual([{ slot: ga.slot, pid: a!.pid }])
        expect((await target.peek(spec, KEY)).holds).toBe(2)
        const real = await reclaimLeases({ key: KEY, store })
        expect(real.reclaimed).toEqual([{ slot: ga.slot }])
        expect(real.status).toMatchObject({ key: KEY, active: 1, holders: [{ slot: gb.slot, state: 'alive' }] })
        expect(await target.peek(spec, KEY)).toEqual({ holds: 1, fences: [gb.fence] })
        expect(await b!.release()).toBe(true)
      })
    })

    describe('S4 fences', () => {
      const KEY = 'fence-key'

      it('strictly increase across grants in several holders, crashed holders included', async () => {
        const { store, holder } = await setup()
        const opts = { key: KEY, limit: 1, waitMs: 20_000 }
        const fences: number[] = []
        let hs = await holders(holder, 3)
        for (let round = 0; round < 3; round++) {
          for (const [n, h] of hs.entries()) {
            fences.push(granted(await h.acquire(opts)).fence)
            // One crash per round, while holding: the next grant must still get a larger fence.
            if (n === round) await h.kill()
            else expect(await h.release()).toBe(true)
          }
          hs = await Promise.all(hs.map((h, n) => (n === round ? holder() : h)))
        }
        const mine = await acquireLease({ ...opts, store })
        fences.push(mine.fence)
        await mine.release()
        expect(fences).toHaveLength(10)
        for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number)
      })

      it('strictly increase across 100 back-to-back grants', async () => {
        const { store } = await setup()
        let last = 0
        for (let i = 0; i < 100; i++) {
          const lease = await acquireLease({ key: KEY, limit: 1, store })
          expect(lease.fence).toBeGreaterThan(last)
          expect(Number.isSafeInteger(lease.fence)).toBe(true)
          last = lease.fence
          expect(await lease.release()).toBe(true)
        }
      })
    })

    describe('S5 token-checked release', () => {
      const KEY = 'release-key'

      it('release is true once, false after', async () => {
        const { spec, store } = await setup()
        const lease = await acquireLease({ key: KEY, limit: 1, store })
        expect(await lease.release()).toBe(true)
        expect(await lease.release()).toBe(false)
        if (caps.releaseSync) expect(lease.releaseSync()).toBe(false)
        expect((await inspectLeases({ key: KEY, store })).active).toBe(0)
        expect((await target.peek(spec, KEY)).holds).toBe(0)
      })

      /**
       * Our hold is removed behind our back and the slot re-granted to another; then we release.
       * Returns what release said and the holds left in storage (the other's, if the check holds).
       */
      async function releaseAfterRegrant(how: 'release' | 'releaseSync', fault: Fault | null): Promise<{ ok: boolean; left: Peek; fence: number }> {
        const { spec, holder } = await setup()
        const store = open(fault ? target.faulty(spec, fault) : spec)
        const mine = await acquireLease({ key: KEY, limit: 1, store })
        expect(mine.slot).toBe(0)
        await target.evict(spec, KEY, 0)
        const other = await holder()
        const g = granted(await other.acquire({ key: KEY, limit: 1 }))
        expect(g.slot).toBe(0)
        const ok = how === 'release' ? await mine.release() : mine.releaseSync()
        return { ok, left: await target.peek(spec, KEY), fence: g.fence }
      }

      for (const how of ['release', 'releaseSync'] as const) {
        gated(how === 'release' || caps.releaseSync, `${how}() of a hold removed behind our back is false, and the slot re-granted to another stays intact`, 'it has no releaseSync', async () => {
          const { ok, left, fence } = await releaseAfterRegrant(how, null)
          expect(ok).toBe(false)
          expect(left).toEqual({ holds: 1, fences: [fence] })
        })
      }
      gated(
        target.optionalFaults.includes('releaseIgnoresToken'),
        'faulty twin (releaseIgnoresToken): the same check catches a release that removes another\'s hold',
        'it has no releaseIgnoresToken seam',
        async () => {
          const { left } = await releaseAfterRegrant('release', 'releaseIgnoresToken')
          expect(left.holds).toBe(0)
        },
      )

      it('a re-granted slot answers to its new holder: inspection names it, its release is true', async () => {
        const { spec, store, holder } = await setup()
        const mine = await acquireLease({ key: KEY, limit: 1, store })
        await target.evict(spec, KEY, mine.slot)
        const other = await holder()
        const g = granted(await other.acquire({ key: KEY, limit: 1 }))
        expect(await mine.release()).toBe(false)
        const st = await inspectLeases({ key: KEY, store, verbose: true })
        expect(st.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: other.pid, fence: g.fence })])
        expect(await mine.release()).toBe(false)
        expect(await other.release()).toBe(true)
      })
    })

    describe('S7 lease.signal', () => {
      const KEY = 'signal-key'

      it('aborts (lost) when the store finds the hold gone, never on our own release; held() says so at once', async () => {
        const { spec, store } = await setup()
        const kept = await acquireLease({ key: KEY, limit: 2, store })
        const lost = await acquireLease({ key: KEY, limit: 2, store })
        expect([kept.held(), lost.held()]).toEqual([true, true])
        await target.evict(spec, KEY, lost.slot)
        // held() asks now, before any event could have announced the loss (where the store can
        // see an eviction locally; a networked store learns it at its next renewal).
        if (caps.heldSeesEviction) expect(lost.held()).toBe(false)
        expect(kept.held()).toBe(true)
        expect(await lost.release()).toBe(false)
        expect(lost.signal.aborted).toBe(true)
        expect(LOST_REASONS).toContain(lost.signal.reason)
        expect(kept.signal.aborted).toBe(false)
        expect(await kept.release()).toBe(true)
        expect(kept.held()).toBe(false)
        expect(kept.signal.aborted).toBe(false)
      })
    })

    describe('S3 one transition per key at a time (lesson 3: two claimers, one dead slot)', () => {
      const KEY = 'race'

      async function deadHolder(make: () => Promise<Holder>, spec: S): Promise<void> {
        const victim = await make()
        granted(await victim.acquire({ key: KEY, limit: 1 }))
        await victim.kill()
        expect((await target.peek(spec, KEY)).holds).toBe(1)
      }

      it('exactly one of two claimers starting together wins (5 rounds)', async () => {
        const { spec, store, holder } = await setup()
        const [a, b] = await holders(holder, 2)
        for (let round = 0; round < 5; round++) {
          await deadHolder(holder, spec)
          const replies = await Promise.all([a!.acquire({ key: KEY, limit: 1 }, { mode: 'try' }), b!.acquire({ key: KEY, limit: 1 }, { mode: 'try' })])
          expect(replies.every((r) => r.ev === 'acquired' || r.ev === 'null'), JSON.stringify(replies)).toBe(true)
          const winners = replies.filter((r) => r.ev === 'acquired')
          expect(winners).toHaveLength(1)
          const st = await inspectLeases({ key: KEY, store, verbose: true })
          expect(st.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: winners[0]?.pid })])
          expect(await (replies[0]?.ev === 'acquired' ? a! : b!).release()).toBe(true)
        }
      })

      /**
       * The worst interleaving, forced: A has judged the dead slot, reclaimed it and counted the
       * key free, and stops there; B claims meanwhile; then A goes on. Returns both replies.
       */
      async function interleaved(fault: Fault | null): Promise<[Msg, Msg]> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const holder = target.holders(spec)
        await deadHolder(holder, spec)
        const [a, b] = await holders(holder, 2)
        const paused = await a!.acquirePaused({ key: KEY, limit: 1 })
        const rb = await b!.acquire({ key: KEY, limit: 1 }, { mode: 'try' })
        paused.resume()
        return [await paused.result, rb]
      }

      gated(caps.pauseMidClaim, 'exactly one wins when one claimer stops mid-claim after judging the slot; the other gets null, not an error', 'a claim cannot be paused inside', async () => {
        const [ra, rb] = await interleaved(null)
        expect(rb.ev).toBe('null')
        expect(ra.ev).toBe('acquired')
      })
      gated(caps.pauseMidClaim, 'faulty twin (noGate): the same interleaving makes two winners', 'a claim cannot be paused inside', async () => {
        const [ra, rb] = await interleaved('noGate')
        expect([ra.ev, rb.ev]).toEqual(['acquired', 'acquired'])
      })
    })

    describe('S6 answers, busy errors and no identity leaks (I7)', () => {
      it('lease_busy carries counts only: no pid, host, key or store location', async () => {
        const { spec, store, holder } = await setup()
        const key = 'secret-key-Zq7'
        const h = await holder()
        granted(await h.acquire({ key, limit: 1 }))
        for (const p of [acquireLease({ key, limit: 1, store, waitMs: 0 }), acquireLease({ key, limit: 1, store, waitMs: 30 })]) {
          const err = await leaseError(p)
          expect(err.code).toBe('lease_busy')
          expect(err.name).toBe('LeaseError')
          expect(err.capacity).toEqual({ active: 1, used: 1, limit: 1 })
          expect(Object.keys(err).sort()).toEqual(['capacity', 'code', 'name'])
          expect(err.cause).toBeUndefined()
          const own = Object.fromEntries(Object.getOwnPropertyNames(err).filter((k) => k !== 'stack').map((k) => [k, (err as unknown as Record<string, unknown>)[k]]))
          const text = [JSON.stringify(own), err.message, String(err), JSON.stringify(err)].join('\n')
          const host = hostIdentity()
          const secrets = [key, host.hostname, host.bootId, host.machineId ?? '', ...target.secrets(spec, key)]
          // (A hostname of a few letters could occur in any English message: too short to tell.)
          for (const secret of secrets.filter((x) => x.length >= 4)) expect(text).not.toContain(secret)
          expect(text).not.toMatch(new RegExp(`\\b${h.pid}\\b`))
          expect(text).not.toMatch(new RegExp(`\\b${process.pid}\\b`))
        }
      })

      it('default inspection is counts and states only; verbose shows the holder', async () => {
        const { store, holder } = await setup()
        const key = 'inspect-key'
        const h = await holder()
        granted(await h.acquire({ key, limit: 2, metadata: { job: 'secret-job' } }))
        expect(await inspectLeases({ key, store })).toEqual({ key, active: 1, used: 1, waiting: 0, ...(caps.recordsLimit ? { limit: 2 } : {}), holders: [{ slot: 0, state: 'alive', weight: 1 }] })
        const verbose = await inspectLeases({ key, store, verbose: true })
        expect(verbose.holders[0]).toMatchObject({ pid: h.pid, metadata: { job: 'secret-job' } })
      })

      it('waitMs on a full key ends with lease_busy and the capacity', async () => {
        const { store, holder } = await setup()
        const h = await holder()
        granted(await h.acquire({ key: 'deadline', limit: 1 }))
        const err = await leaseError(acquireLease({ key: 'deadline', limit: 1, store, waitMs: 200 }))
        expect(err.code).toBe('lease_busy')
        expect(err.capacity).toEqual({ active: 1, used: 1, limit: 1 })
        expect(await tryAcquireLease({ key: 'deadline', limit: 1, store })).toBeNull()
      })

      it('aborting a waiting acquire rejects with aborted (name AbortError)', async () => {
        const { store, holder } = await setup()
        const h = await holder()
        granted(await h.acquire({ key: 'abort', limit: 1 }))
        const ac = new AbortController()
        let onWaiting!: () => void
        const waiting = new Promise<void>((r) => {
          onWaiting = r
        })
        const p = acquireWith(store, normalizeOptions({ key: 'abort', limit: 1, store, signal: ac.signal }), 'wait', { onBusy: () => onWaiting() })
        await waiting
        ac.abort(new Error('stop'))
        const err = await leaseError(p)
        expect(err).toMatchObject({ code: 'aborted', name: 'AbortError' })
        // The public API too, aborted while its first claim may still be in flight.
        const ac2 = new AbortController()
        const p2 = acquireLease({ key: 'abort', limit: 1, store, signal: ac2.signal })
        setImmediate(() => ac2.abort())
        expect(await leaseError(p2)).toMatchObject({ code: 'aborted', name: 'AbortError' })
      })

      it('a pre-aborted signal rejects at once, even with a slot free; nothing is held', async () => {
        const { spec, store } = await setup()
        const signal = AbortSignal.abort()
        expect(await leaseError(acquireLease({ key: 'pre', limit: 1, store, signal }))).toMatchObject({ code: 'aborted', name: 'AbortError' })
        expect((await leaseError(tryAcquireLease({ key: 'pre', limit: 1, store, signal }))).code).toBe('aborted')
        expect((await target.peek(spec, 'pre')).holds).toBe(0)
      })

      const bad: Array<[string, Record<string, unknown>]> = [
        ['empty key', { key: '' }],
        ['257-char key', { key: 'k'.repeat(257) }],
        ['non-string key', { key: 42 }],
        ['missing key', { key: undefined }],
        ['lone high surrogate', { key: 'a\uD800b' }],
        ['lone low surrogate', { key: '\uDC00' }],
        ['limit 0', { limit: 0 }],
        ['limit 1.5', { limit: 1.5 }],
        ['limit -1', { limit: -1 }],
        ['limit NaN', { limit: Number.NaN }],
        ['limit Infinity', { limit: Number.POSITIVE_INFINITY }],
        ["limit '2'", { limit: '2' }],
        ['waitMs -1', { waitMs: -1 }],
        ['waitMs NaN', { waitMs: Number.NaN }],
        ["waitMs 'x'", { waitMs: 'x' }],
        ['non-object metadata', { metadata: 'x' }],
        ['signal not an AbortSignal', { signal: {} }],
        ['store with lockRoot', { lockRoot: '/tmp/x' }],
        ['store with an empty lockRoot', { lockRoot: '' }],
        ['store with allowUnsafeFilesystem', { allowUnsafeFilesystem: false }],
        ['misspelled option', { waitMS: 5 }],
      ]
      it.each(bad)('%s -> invalid_argument, before the store is asked', async (_name, over) => {
        const { spec, store } = await setup()
        const calls: string[] = []
        const counting = new Proxy(store, {
          get(t, prop, recv) {
            const v = Reflect.get(t, prop, recv) as unknown
            return typeof v === 'function' ? (...args: unknown[]) => (calls.push(String(prop)), (v as (...a: unknown[]) => unknown).apply(t, args)) : v
          },
        })
        const opts = { key: 'args', limit: 1, store: counting, ...over } as unknown as LeaseOptions
        expect((await leaseError(acquireLease(opts))).code).toBe('invalid_argument')
        expect((await leaseError(tryAcquireLease(opts))).code).toBe('invalid_argument')
        expect((await leaseError(withLease(opts, () => 1))).code).toBe('invalid_argument')
        expect(calls).toEqual([])
        expect((await target.peek(spec, 'args')).holds).toBe(0)
      })

      it('inspection refuses an invalid key; non-object options are refused', async () => {
        const { store } = await setup()
        expect((await leaseError(inspectLeases({ key: '', store }))).code).toBe('invalid_argument')
        expect((await leaseError(reclaimLeases({ key: 'k'.repeat(257), store }))).code).toBe('invalid_argument')
        expect((await leaseError(acquireLease(null as unknown as LeaseOptions))).code).toBe('invalid_argument')
      })

      it('accepts the edge values: a 256-char key, astral characters, limit 1 and 2^53 - 1, waitMs 0 and Infinity', async () => {
        const { store } = await setup()
        for (const opts of [
          { key: 'k'.repeat(256), limit: 1 },
          { key: 'emoji \u{1F600} key', limit: 1, waitMs: 0 },
          { key: 'inf', limit: Number.MAX_SAFE_INTEGER, waitMs: Number.POSITIVE_INFINITY },
        ]) {
          const lease = await acquireLease({ ...opts, store })
          expect(lease.key).toBe(opts.key)
          expect(await lease.release()).toBe(true)
        }
      })
    })

    describe('S10 lifecycle', () => {
      it('close() ends the holds still open, is idempotent, and later claims reject with store_closed', async () => {
        const spec = await target.spec()
        const store = target.open(spec)
        const a = await acquireLease({ key: 'close-a', limit: 1, store })
        const b = await acquireLease({ key: 'close-b', limit: 2, store })
        await store.close()
        await store.close()
        expect((await target.peek(spec, 'close-a')).holds).toBe(0)
        expect((await target.peek(spec, 'close-b')).holds).toBe(0)
        // Ended as our own release would: no lost-hold alarm, and release has nothing left to do.
        expect(a.signal.aborted).toBe(false)
        expect(await a.release()).toBe(false)
        expect(await b.release()).toBe(false)
        expect((await leaseError(acquireLease({ key: 'close-a', limit: 1, store }))).code).toBe('store_closed')
        expect((await leaseError(tryAcquireLease({ key: 'close-a', limit: 1, store }))).code).toBe('store_closed')
        // Another store on the same storage takes the slots at once.
        const other = open(spec)
        const again = await tryAcquireLease({ key: 'close-a', limit: 1, store: other })
        expect(again).not.toBeNull()
        await again?.release()
      })

      const closedDefect = target.knownDefects?.closedStoreStillAnswers
      ;(closedDefect ? it.fails : it)(
        `after close(), every call rejects with store_closed${closedDefect ? ` — KNOWN DEFECT: ${closedDefect}` : ''}`,
        async () => {
          const spec = await target.spec()
          const store = target.open(spec)
          const lease = await acquireLease({ key: 'closed', limit: 1, store })
          await store.close()
          const wake = { recheckInMs: null, opaque: undefined }
          const calls: Array<[string, () => Promise<unknown>]> = [
            ['claim', () => store.claim({ key: 'closed', limit: 1, weight: 1, metadata: {}, holder: selfHolder(), fair: true, mode: 'wait', place: null })],
            ['watch', () => store.watch('closed', wake, () => {})],
            ['inspect', () => store.inspect('closed', false)],
            ['sweep', () => store.sweep('closed', true, false)],
            ...(store.listKeys ? [['listKeys', () => store.listKeys!()] as [string, () => Promise<unknown>]] : []),
          ]
          const codes: Record<string, string> = {}
          for (const [name, call] of calls) codes[name] = (await leaseError(call()).catch((e: Error) => ({ code: `not a LeaseError: ${e.message}` }))).code
          expect(codes).toEqual(Object.fromEntries(calls.map(([name]) => [name, 'store_closed'])))
          expect(await lease.release()).toBe(false)
        },
      )

      gated(caps.releaseSync, 'a holder that ends normally releases what it held (the exit hook)', 'no synchronous release; its holds end with their session', async () => {
        const { spec, holder } = await setup()
        const h = await holder()
        granted(await h.acquire({ key: 'exit-a', limit: 2 }))
        granted(await h.acquire({ key: 'exit-b', limit: 1 }))
        await h.exit()
        expect((await target.peek(spec, 'exit-a')).holds).toBe(0)
        expect((await target.peek(spec, 'exit-b')).holds).toBe(0)
      })
    })

    describe('S6 an outage is store_unavailable, never lease_busy', () => {
      const outage = 'start' in target.outage ? target.outage : null
      const why = 'none' in target.outage ? target.outage.none : ''
      gated(outage !== null, 'claims during an outage fail with store_unavailable (with the cause); after it, all is as before', why, async () => {
        const { spec, store } = await setup()
        const lease = await acquireLease({ key: 'outage', limit: 1, store })
        const end = await outage!.start(spec)
        try {
          // The key is full too: an outage must still not read as busy.
          const err = await leaseError(acquireLease({ key: 'outage', limit: 1, store, waitMs: 0 }))
          expect(err.code).toBe('store_unavailable')
          expect(err.cause).toBeDefined()
          expect((await leaseError(tryAcquireLease({ key: 'outage', limit: 2, store }))).code).toBe('store_unavailable')
        } finally {
          await end()
        }
        expect(await lease.release()).toBe(true)
        const again = await tryAcquireLease({ key: 'outage', limit: 1, store })
        expect(again).not.toBeNull()
        await again?.release()
      })
    })

    describe('optional abilities (declared, not sniffed)', () => {
      it(caps.releaseSync ? 'releaseSync: present; releases once' : 'releaseSync: absent as declared; lease.releaseSync() throws invalid_argument', async () => {
        const { store } = await setup()
        expect(typeof store.releaseSync === 'function').toBe(caps.releaseSync)
        const lease = await acquireLease({ key: 'sync', limit: 1, store })
        if (caps.releaseSync) {
          expect(lease.releaseSync()).toBe(true)
          expect(lease.releaseSync()).toBe(false)
          expect((await inspectLeases({ key: 'sync', store })).active).toBe(0)
        } else {
          expect(() => lease.releaseSync()).toThrow(expect.objectContaining({ code: 'invalid_argument' }))
          expect(await lease.release()).toBe(true)
        }
      })

      it(caps.listKeys ? 'listKeys: present; lists the keys that held slots' : 'listKeys: absent as declared; listLeaseKeys throws invalid_argument', async () => {
        const { store } = await setup()
        expect(typeof store.listKeys === 'function').toBe(caps.listKeys)
        const a = await acquireLease({ key: 'list-a', limit: 1, store })
        const b = await acquireLease({ key: 'list b/é', limit: 1, store })
        if (caps.listKeys) {
          expect((await listLeaseKeys({ store })).filter((k) => k.startsWith('list')).sort()).toEqual(['list b/é', 'list-a'])
        } else {
          expect(() => listLeaseKeys({ store })).toThrow(expect.objectContaining({ code: 'invalid_argument' }))
        }
        await a.release()
        await b.release()
      })

      it(caps.handOff ? 'handOff: present; the held slot has a descriptor to hand to a child' : 'handOff: absent as declared (holds cannot be handed to a child process)', async () => {
        const { store } = await setup()
        expect(store.handOff !== undefined).toBe(caps.handOff)
        if (!caps.handOff) return
        const lease = await acquireWith(store, normalizeOptions({ key: 'hand', limit: 1, store }), 'try')
        const inner = leaseInternals(lease as Lease)
        expect(inner).toBeDefined()
        expect(Number.isInteger(store.handOff!.lockDescriptor(inner!.hold))).toBe(true)
        expect(await lease?.release()).toBe(true)
      })
    })
  })
}
