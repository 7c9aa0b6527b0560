// One conformance suite for every lease store (STYLE §2.3): the invariants S1–S12 of
// lib/lease/store.ts, driven through the public API and the engine over a caller-supplied store.
// describeStore(target) runs it for one store configuration; each target file is one line.
// Every safety check has a faulty twin: the same check run against target.faulty(...) must fail,
// proving it can. Optional abilities keep their place: a store without one is checked to lack it,
// with the reason in the test's title. Holders are real processes for stores shared across
// processes (agents open the store from its JSON spec), simulated ones for the in-memory store.
// Order checks never rest on timing: a waiter is known to have arrived once it has answered busy
// (its place taken) and says so, and only then does the next one start.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, inspectLeases, listLeaseKeys, pruneLeaseKeys, reclaimLeases, tryAcquireLease, withLease } from '../../lib/index.js'
import { type Lease, acquireWith, leaseInternals, selfHolder } from '../../lib/lease/engine.js'
import { type LeaseOptions, normalizeOptions } from '../../lib/lease/options.js'
import type { LeaseStore, LostReason } from '../../lib/lease/store.js'
import { hostIdentity } from '../../lib/probes.js'
import { type Interval, JsonChild, type Msg, cleanup, freshRoot, leaseLib, peakConcurrency, removeLeaseLib, testSignal, until } from '../helpers/lease.js'
import type { Holder, Pending } from './holders.js'
import type { Fault, OptionalFault, Peek, StoreTarget } from './target.js'

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
  async function contend(spec: S, o: { procs: number; limit: number; cycles: number; holdMs: number; weights?: number[] }): Promise<Run> {
    const key = 'peak'
    const run: Run = { intervals: [], busy: 0, lost: 0, fences: [] }
    // Contender n holds weight weights[n mod length] (1 without weights).
    const weightOf = (n: number): number => (o.weights ? (o.weights[n % o.weights.length] as number) : 1)
    if (target.crossProcess) {
      const lib = await leaseLib()
      const cfg = (n: number) => ({ spec, key, limit: o.limit, cycles: o.cycles, holdMs: o.holdMs, weight: weightOf(n) })
      const kids = Array.from({ length: o.procs }, (_, n) => new JsonChild('contender.mjs', [lib, JSON.stringify(cfg(n))]))
      await Promise.all(kids.map((k) => k.expect('ready')))
      for (const k of kids) k.send('go')
      await Promise.all(
        kids.map(async (k, n) => {
          let open: { t: bigint; asked: bigint; fence: number; weight: number } | null = null
          for (;;) {
            const m = await k.next()
            if (m.ev === 'acq') {
              expect(open).toBeNull()
              // Summed with the weight asked for (what the holder uses), which the lease must report.
              expect(m.weight).toBe(weightOf(n))
              open = { t: BigInt(m.t as string), asked: BigInt(m.asked as string), fence: m.fence as number, weight: weightOf(n) }
              run.fences.push(m.fence as number)
            } else if (m.ev === 'rel') {
              if (open === null) throw new Error('release logged without an acquire')
              run.intervals.push({ who: `p${n}`, start: open.t, end: BigInt(m.t as string), fence: open.fence, weight: open.weight, asked: open.asked, done: BigInt(m.done as string) })
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
        const opts = normalizeOptions({ key, limit: o.limit, store, waitMs: 30_000, weight: weightOf(n) })
        for (let i = 0; i < o.cycles; i++) {
          const asked = process.hrtime.bigint()
          const lease = (await acquireWith(store, opts, 'wait', { onBusy: () => run.busy++ })) as Lease
          const start = process.hrtime.bigint()
          run.fences.push(lease.fence)
          await new Promise((r) => setTimeout(r, o.holdMs))
          const end = process.hrtime.bigint()
          if (!(await lease.release())) run.lost++
          expect(lease.weight).toBe(weightOf(n))
          run.intervals.push({ who: `c${n}`, start, end, fence: lease.fence, weight: weightOf(n), asked, done: process.hrtime.bigint() })
          await new Promise((r) => setImmediate(r))
        }
      }),
    )
    return run
  }

  /** A faulty twin of an issue-10 rule: run where the store has the fault's seam, else skipped with why. */
  function twin(fault: OptionalFault, title: string, fn: () => Promise<void>): void {
    gated(target.optionalFaults.includes(fault), `faulty twin (${fault}): ${title}`, `it has no ${fault} seam`, fn)
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
        ['weight 0', { weight: 0 }],
        ['weight 1.5', { weight: 1.5 }],
        ['weight above the limit', { weight: 2 }],
        ["fair 'yes'", { fair: 'yes' }],
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

    describe('S1 weights: the sum of live weights never exceeds the limit (interval sweep)', () => {
      // Every weight from 1 to the limit, each held by two contenders.
      const WEIGHTS = [1, 2, 3, 1, 2, 3]

      it('six contenders of weights 1..3 cycling on a limit of 3 never hold more than 3 at once', async () => {
        const run = await contend(await target.spec(), { procs: 6, limit: 3, cycles: 8, holdMs: 5, weights: WEIGHTS })
        expect(run.intervals).toHaveLength(6 * 8)
        expect(peakConcurrency(run.intervals)).toBeLessThanOrEqual(3)
        expect(run.busy).toBeGreaterThan(0)
        expect(run.lost).toBe(0)
        checkFences(run)
      })

      twin('sumByCount', 'the same sweep catches a store that counts holders, not weights', async () => {
        // Three holders of any weights fit a count of 3: a weight-3 holder beside any other is too much.
        let peak = 0
        for (let attempt = 0; attempt < 3 && peak <= 3; attempt++) {
          const run = await contend(target.faulty(await target.spec(), 'sumByCount'), { procs: 6, limit: 3, cycles: 6, holdMs: 15, weights: WEIGHTS })
          peak = peakConcurrency(run.intervals)
        }
        expect(peak).toBeGreaterThan(3)
      })

      it('status reports each holder\'s weight and their sum as used', async () => {
        const { store, holder } = await setup()
        const [a, b] = await holders(holder, 2)
        granted(await a!.acquire({ key: 'weights', limit: 5, weight: 3 }))
        granted(await b!.acquire({ key: 'weights', limit: 5, weight: 2 }))
        const st = await inspectLeases({ key: 'weights', store })
        expect(st).toMatchObject({ active: 2, used: 5, waiting: 0 })
        expect(st.holders.map((h) => h.weight).sort()).toEqual([2, 3])
        const err = await leaseError(acquireLease({ key: 'weights', limit: 5, store, waitMs: 0 }))
        expect(err.capacity).toEqual({ active: 2, used: 5, limit: 5 })
        expect(await a!.release()).toBe(true)
        const lease = await acquireLease({ key: 'weights', limit: 5, weight: 3, store })
        expect(lease.weight).toBe(3)
        expect(await tryAcquireLease({ key: 'weights', limit: 5, store })).toBeNull()
        expect(await lease.release()).toBe(true)
      })
    })

    describe('S11 order: first come, first served across processes', () => {
      const KEY = 'fifo'

      /** The waiters' own log: tags in the order they arrived (first busy answer) and were granted. */
      function readOrder(log: string): { arrived: string[]; granted: string[] } {
        const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : []
        const of = (what: string): string[] => lines.filter((l) => l.startsWith(`${what} `)).map((l) => l.slice(what.length + 1))
        return { arrived: of('arrived'), granted: of('granted') }
      }

      /**
       * A holder takes the whole key; waiters start one after another, each only once the one
       * before has waited (its place taken), so arrival order is known whatever the timing; then
       * the holder releases and the waiters hand the key on among themselves (each releases once
       * its grant is logged). Returns the order log and the queue length the store reported.
       */
      async function handOffs(fault: Fault | null, n: number): Promise<{ arrived: string[]; granted: string[]; byFence: string[]; waiting: number }> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const make = target.holders(spec)
        const store = open(spec)
        const owner = await make()
        granted(await owner.acquire({ key: KEY, limit: 1 }))
        const log = join(freshRoot().base, 'order.log')
        const pending: Pending[] = []
        for (const [i, w] of (await holders(make, n)).entries()) {
          const p = w.enqueue({ key: KEY, limit: 1 }, { tag: `w${i}`, log, releaseAtOnce: true })
          await p.queued
          pending.push(p)
        }
        const { waiting } = await inspectLeases({ key: KEY, store })
        expect(await owner.release()).toBe(true)
        const fences = new Map<string, number>()
        for (const [i, p] of pending.entries()) fences.set(`w${i}`, granted(await p.result).fence)
        // Fences grow in grant order (S4): a second witness of the order, from the store itself.
        const byFence = [...fences].sort((a, b) => a[1] - b[1]).map(([tag]) => tag)
        return { ...readOrder(log), byFence, waiting }
      }

      const tags = (n: number): string[] => Array.from({ length: n }, (_, i) => `w${i}`)

      it('six waiters in six processes are granted in the order they arrived', async () => {
        const { arrived, granted: order, byFence, waiting } = await handOffs(null, 6)
        expect(arrived).toEqual(tags(6))
        expect(order).toEqual(arrived)
        expect(byFence).toEqual(arrived)
        // Each waiter counted once it had a place.
        expect(waiting).toBe(6)
      })

      twin('barge', 'the same log catches a store that lets any waiter take a freed slot', async () => {
        const { arrived, granted: order } = await handOffs('barge', 6)
        expect(arrived).toEqual(tags(6))
        expect(order).not.toEqual(arrived)
      })

      /**
       * Limit 2, two holders of weight 1. A heavy waiter (weight 2) queues; one holder releases,
       * so one unit is free: not enough for the head. Then light waiters (weight 1) start, one
       * after another: each would fit, but the heavy head came first. Returns whether each light
       * waiter's first attempt was refused (queued) and the grant order once all were served (by
       * fence: two light holds may overlap, so their log lines need not be in grant order).
       */
      async function heavyHead(fault: Fault | null): Promise<{ queued: boolean[]; granted: string[] }> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const make = target.holders(spec)
        const [h1, h2, heavy, l1, l2] = await holders(make, 5)
        granted(await h1!.acquire({ key: KEY, limit: 2 }))
        granted(await h2!.acquire({ key: KEY, limit: 2 }))
        const log = join(freshRoot().base, 'order.log')
        const head = heavy!.enqueue({ key: KEY, limit: 2, weight: 2 }, { tag: 'heavy', log, releaseAtOnce: true })
        await head.queued
        expect(await h1!.release()).toBe(true)
        const queued: boolean[] = []
        const light: Pending[] = []
        for (const [i, l] of [l1!, l2!].entries()) {
          const p = l.enqueue({ key: KEY, limit: 2, weight: 1 }, { tag: `light${i}`, log, releaseAtOnce: true })
          queued.push(await p.queued.then(() => true, () => false))
          light.push(p)
        }
        expect(await h2!.release()).toBe(true)
        const heavyGrant = granted(await head.result)
        expect(heavyGrant.weight).toBe(2)
        const grants: Array<[string, number]> = [['heavy', heavyGrant.fence]]
        for (const [i, p] of light.entries()) grants.push([`light${i}`, granted(await p.result).fence])
        expect(readOrder(log).arrived).toEqual(['heavy', ...light.map((_, i) => `light${i}`).filter((_, i) => queued[i])])
        return { queued, granted: grants.sort((a, b) => a[1] - b[1]).map(([tag]) => tag) }
      }

      it('a heavy waiter at the head is not overtaken by light ones that would fit', async () => {
        const { queued, granted: order } = await heavyHead(null)
        expect(queued).toEqual([true, true])
        expect(order).toEqual(['heavy', 'light0', 'light1'])
      })

      twin('barge', 'the same check catches light waiters overtaking the heavy head', async () => {
        const { queued, granted: order } = await heavyHead('barge')
        expect(queued).toEqual([false, false])
        expect(order[0]).not.toBe('heavy')
      })

      /**
       * A holder of weight 1 on limit 2; a waiter of weight 2 at the head. One unit is free: may a
       * try of weight 1 take it? Returns whether it did.
       */
      async function tryBesideWaiter(fault: Fault | null): Promise<boolean> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const store = open(spec)
        const [owner, waiter] = await holders(target.holders(spec), 2)
        granted(await owner!.acquire({ key: KEY, limit: 2 }))
        const head = waiter!.enqueue({ key: KEY, limit: 2, weight: 2 }, { tag: 'head' })
        await head.queued
        const lease = await tryAcquireLease({ key: KEY, limit: 2, store })
        const took = lease !== null
        if (lease !== null) {
          expect(await lease.release()).toBe(true)
          return took
        }
        expect(await inspectLeases({ key: KEY, store })).toMatchObject({ active: 1, used: 1, waiting: 1 })
        // A first attempt of a waiting acquire does not jump the queue either.
        expect((await leaseError(acquireLease({ key: KEY, limit: 2, store, waitMs: 0 }))).code).toBe('lease_busy')
        // fair: false ignores the queue (and takes no place in it).
        const barger = await tryAcquireLease({ key: KEY, limit: 2, store, fair: false })
        expect(barger).not.toBeNull()
        expect(await inspectLeases({ key: KEY, store })).toMatchObject({ used: 2, waiting: 1 })
        expect(await barger!.release()).toBe(true)
        expect(await owner!.release()).toBe(true)
        expect(granted(await head.result).weight).toBe(2)
        return took
      }

      it('tryAcquireLease returns null while a live waiter waits, even with a slot free that would fit', async () => {
        expect(await tryBesideWaiter(null)).toBe(false)
      })

      twin('barge', 'the same check catches a try that jumps the queue', async () => {
        expect(await tryBesideWaiter('barge')).toBe(true)
      })

      /**
       * A holder on limit 1, two waiters queued; the first dies (SIGKILL) or aborts. Returns the
       * queue length the store reports then and, when only the live waiter is left, what that
       * waiter gets once the holder releases.
       */
      async function waiterGone(how: 'kill' | 'abort', fault: Fault | null): Promise<{ waiting: number; behind: Msg | null }> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const store = open(spec)
        const [owner, first, second] = await holders(target.holders(spec), 3)
        granted(await owner!.acquire({ key: KEY, limit: 1 }))
        const p1 = first!.enqueue({ key: KEY, limit: 1 }, { tag: 'first' })
        await p1.queued
        const p2 = second!.enqueue({ key: KEY, limit: 1 }, { tag: 'second' })
        await p2.queued
        expect((await inspectLeases({ key: KEY, store })).waiting).toBe(2)
        if (how === 'kill') {
          await first!.kill()
        } else {
          p1.abort()
          // The reply comes after the acquire gave its place up.
          expect(await p1.result).toMatchObject({ ev: 'error', code: 'aborted' })
        }
        const { waiting } = await inspectLeases({ key: KEY, store })
        if (waiting !== 1) return { waiting, behind: null }
        expect(await owner!.release()).toBe(true)
        const behind = await p2.result
        expect(await second!.release()).toBe(true)
        return { waiting, behind }
      }

      it('a SIGKILLed waiter leaves the queue at once: the waiter behind it is granted', async () => {
        const { waiting, behind } = await waiterGone('kill', null)
        expect(waiting).toBe(1)
        expect(behind).toMatchObject({ ev: 'acquired' })
      })

      twin('deadPlacesCount', 'the same check catches a dead waiter\'s place that keeps counting', async () => {
        expect((await waiterGone('kill', 'deadPlacesCount')).waiting).toBe(2)
      })

      it('an aborted waiter leaves the queue at once: the waiter behind it is granted', async () => {
        const { waiting, behind } = await waiterGone('abort', null)
        expect(waiting).toBe(1)
        expect(behind).toMatchObject({ ev: 'acquired' })
      })

      twin('leaveIgnored', 'the same check catches a place kept after its waiter gave up', async () => {
        expect((await waiterGone('abort', 'leaveIgnored')).waiting).toBe(2)
      })
    })

    describe('S12 takeover notice: exactly one later holder learns of a crashed one', () => {
      const KEY = 'notice'

      /**
       * A holder that released normally, then one that crashed (SIGKILL) while holding; four
       * claimers race for the key (each releasing once granted) beside a reclaim sweep. Returns
       * every grant after the crash, and the crashed holder's grant.
       */
      async function raceAfterCrash(fault: Fault | null): Promise<{ grants: Msg[]; dead: { pid: number; fence: number; slot: number } }> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const store = open(spec)
        const make = target.holders(spec)
        const [calm, doomed] = await holders(make, 2)
        granted(await calm!.acquire({ key: KEY, limit: 2 }))
        const gd = granted(await doomed!.acquire({ key: KEY, limit: 2, metadata: { job: 'doomed' } }))
        expect(await calm!.release()).toBe(true)
        // A normal release leaves no notice.
        const first = await acquireLease({ key: KEY, limit: 2, store })
        expect(first.recovered).toBeNull()
        expect(await first.release()).toBe(true)
        const dead = { pid: doomed!.pid, fence: gd.fence, slot: gd.slot }
        await doomed!.kill()
        const racers = await holders(make, 4)
        const [grants]: [Msg[], unknown] = await Promise.all([
          Promise.all(
            racers.map(async (r) => {
              const g = granted(await r.acquire({ key: KEY, limit: 2, waitMs: 60_000 }))
              expect(await r.release()).toBe(true)
              return g
            }),
          ),
          reclaimLeases({ key: KEY, store }),
        ])
        const last = await acquireLease({ key: KEY, limit: 2, store })
        grants.push({ ev: 'acquired', slot: last.slot, fence: last.fence, recovered: last.recovered })
        expect(await last.release()).toBe(true)
        return { grants, dead }
      }

      const noticed = (grants: Msg[]): Msg[] => grants.filter((g) => g.recovered !== null)

      it('a crashed holder is announced to exactly one of the grants that race after it (a sweep racing too)', async () => {
        const { grants, dead } = await raceAfterCrash(null)
        expect(grants).toHaveLength(5)
        const told = noticed(grants)
        expect(told).toHaveLength(1)
        expect(told[0]!.recovered).toMatchObject({ ...dead, weight: 1, metadata: { job: 'doomed' } })
        expect(typeof (told[0]!.recovered as { acquiredAt: unknown }).acquiredAt).toBe('string')
      })

      twin('noticeTwice', 'the same check catches a notice handed to more than one holder', async () => {
        expect(noticed((await raceAfterCrash('noticeTwice')).grants).length).toBeGreaterThan(1)
      })

      /** A holder crashes; a sweep (not a claim) reclaims it. What does the next grant learn? */
      async function afterSweep(fault: Fault | null): Promise<{ recovered: unknown; dead: { pid: number; fence: number } }> {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const store = open(spec)
        const doomed = await target.holders(spec)()
        const gd = granted(await doomed.acquire({ key: KEY, limit: 1 }))
        await doomed.kill()
        expect((await reclaimLeases({ key: KEY, store })).reclaimed).toEqual([{ slot: gd.slot }])
        expect((await target.peek(spec, KEY)).holds).toBe(0)
        const lease = await acquireLease({ key: KEY, limit: 1, store })
        const { recovered } = lease
        expect(await lease.release()).toBe(true)
        return { recovered, dead: { pid: doomed.pid, fence: gd.fence } }
      }

      it('the notice of a holder reclaimed by a sweep waits for the next grant', async () => {
        const { recovered, dead } = await afterSweep(null)
        expect(recovered).toMatchObject(dead)
      })

      twin('sweepDropsNotice', 'the same check catches a sweep that drops the notice', async () => {
        expect((await afterSweep('sweepDropsNotice')).recovered).toBeNull()
      })
    })

    describe('S7 lease.signal when the whole store is wiped', () => {
      /** The store's storage is wiped behind a holder's back; resolves once its signal fired. */
      async function signalOnWipe(fault: Fault | null): Promise<{ lease: Lease; store: LeaseStore }> {
        const base = await target.spec()
        const store = open(fault ? target.faulty(base, fault) : base)
        const lease = await acquireLease({ key: 'wiped', limit: 1, store })
        expect(lease.signal.aborted).toBe(false)
        await target.wipe!(base)
        if (caps.heldSeesEviction) expect(lease.held()).toBe(false)
        // Without the holder calling anything: the signal is how it learns to stop.
        await until('the lost-hold signal', () => lease.signal.aborted, 10_000)
        return { lease, store }
      }

      gated(target.wipe !== undefined, 'lease.signal aborts (lost) when the storage is wiped; later fences still grow', 'its storage cannot be wiped from under it', async () => {
        const { lease, store } = await signalOnWipe(null)
        expect(lease.signal.reason).toBe('lost')
        expect(lease.held()).toBe(false)
        expect(await lease.release()).toBe(false)
        const again = await acquireLease({ key: 'wiped', limit: 1, store })
        expect(again.fence).toBeGreaterThan(lease.fence)
        expect(await again.release()).toBe(true)
      })

      twin('quietLoss', 'the same check catches a lost hold whose signal never fires', async () => {
        await expect(signalOnWipe('quietLoss')).rejects.toThrow(/timed out waiting for the lost-hold signal/)
      })
    })

    describe('prune: idle keys go away, busy keys stay, fences never go back', () => {
      /**
       * Key `idle` is used and released; `held` has a holder; `waited` a holder and a waiter.
       * Prunes with a long idle time, then a dry run and a real run with idle time 0; then uses
       * `idle` again. Returns the reports and the fences of `idle` before and after.
       */
      async function pruneRound(fault: Fault | null) {
        const base = await target.spec()
        const spec = fault ? target.faulty(base, fault) : base
        const store = open(spec)
        const make = target.holders(spec)
        const before = await acquireLease({ key: 'idle', limit: 1, store })
        expect(await before.release()).toBe(true)
        const [h, w1, w2] = await holders(make, 3)
        granted(await h!.acquire({ key: 'held', limit: 1 }))
        granted(await w1!.acquire({ key: 'waited', limit: 1 }))
        const waiter = w2!.enqueue({ key: 'waited', limit: 1 }, { tag: 'waiter' })
        await waiter.queued
        const recent = await pruneLeaseKeys({ store, idleMs: 3_600_000 })
        const dry = await pruneLeaseKeys({ store, idleMs: 0, dryRun: true })
        const keysAfterDry = caps.listKeys ? await listLeaseKeys({ store }) : null
        const real = await pruneLeaseKeys({ store, idleMs: 0 })
        const keysAfter = caps.listKeys ? await listLeaseKeys({ store }) : null
        const idleHolds = (await target.peek(spec, 'idle')).holds
        const after = await acquireLease({ key: 'idle', limit: 1, store })
        expect(await after.release()).toBe(true)
        return { recent, dry, keysAfterDry, real, keysAfter, idleHolds, fences: [before.fence, after.fence] as const, release: () => w1!.release(), waiter }
      }

      gated(caps.prune, 'removes only the idle key (a dry run only reports); held and waited-on keys stay; fences of the pruned key go on', 'it cannot prune', async () => {
        const r = await pruneRound(null)
        expect(r.recent).toEqual({ dryRun: false, removed: [], kept: 3 })
        expect(r.dry).toEqual({ dryRun: true, removed: ['idle'], kept: 2 })
        if (r.keysAfterDry) expect(r.keysAfterDry.sort()).toEqual(['held', 'idle', 'waited'])
        expect(r.real).toEqual({ dryRun: false, removed: ['idle'], kept: 2 })
        if (r.keysAfter) expect(r.keysAfter.sort()).toEqual(['held', 'waited'])
        expect(r.idleHolds).toBe(0)
        expect(r.fences[1]).toBeGreaterThan(r.fences[0])
        // The waiter of the kept key is still in line.
        expect(await r.release()).toBe(true)
        expect(await r.waiter.result).toMatchObject({ ev: 'acquired' })
      })

      twin('pruneResetsFence', 'the same check catches fences that go back after a prune', async () => {
        const r = await pruneRound('pruneResetsFence')
        expect(r.fences[1]).toBeLessThanOrEqual(r.fences[0])
      })

      twin('pruneBusy', 'the same check catches a prune that removes held and waited-on keys', async () => {
        const r = await pruneRound('pruneBusy')
        expect(r.real.removed.sort()).toEqual(['held', 'idle', 'waited'])
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
