// The chaos checker is the oracle of the stress harness: these synthetic logs pin down what it
// must call a violation and what it must allow (holders above a lowered limit, holders killed or
// wiped by a lock-root deletion).
import { describe, expect, it } from 'vitest'
import { type StressRun, checkRun } from '../scripts/stress/check.mjs'

type Ev = Record<string, unknown>

interface HoldSpec {
  t0: number
  s: number
  /** "rel" logged at t2; omitted: the worker was killed holding. */
  t2?: number
  ok?: boolean
  limit?: number
  slot?: number
  fence?: number
  key?: string
  /** The share of the limit asked for (logged only when given). */
  weight?: number
  /** lease.weight, when it should differ from `weight`. */
  leaseWeight?: number
  fair?: boolean
  mode?: 'wait' | 'try'
  /** The claim attempt of the first busy answer [began, returned]: the acquire queued. */
  q?: [number, number]
  /** The claim attempt that granted [began, returned]; default [s - 2, s - 1]. */
  c?: [number, number]
}

function acq(h: Pick<HoldSpec, 't0' | 'key' | 'limit' | 'weight' | 'fair' | 'mode' | 'q'>): Ev[] {
  const key = h.key ?? 'k'
  const out: Ev[] = [
    { ev: 'acq', t0: h.t0, key, limit: h.limit ?? 1, mode: h.mode ?? 'wait', waitMs: h.mode === 'try' ? 0 : 1000, ...(h.weight ? { weight: h.weight } : {}), ...(h.fair !== undefined ? { fair: h.fair } : {}) },
  ]
  if (h.q) out.push({ ev: 'queued', t: h.q[1], c0: h.q[0], key, place: true })
  return out
}

function cycle(h: HoldSpec): Ev[] {
  const key = h.key ?? 'k'
  const timed = h.c ?? (h.weight || h.fair !== undefined ? [h.s - 2, h.s - 1] : undefined)
  const out: Ev[] = [
    ...acq(h),
    {
      ev: 'grant',
      t: h.s,
      key,
      slot: h.slot ?? 0,
      fence: h.fence ?? 1000 + h.s,
      ...(h.weight ? { weight: h.weight, leaseWeight: h.leaseWeight ?? h.weight } : {}),
      ...(timed ? { c0: timed[0], c1: timed[1] } : {}),
      waitedMs: (h.s - h.t0) / 1000,
    },
  ]
  if (h.t2 !== undefined) {
    out.push({ ev: 'rel', t: h.t2, key })
    out.push({ ev: 'reld', t: h.t2 + 1, key, ok: h.ok ?? true })
  }
  return out
}

interface Scenario {
  limit?: number
  workers: Record<number, { events: Ev[]; killedAt?: number; exits?: boolean }>
  driver?: Ev[]
  before?: Ev[]
  after?: Ev[]
}

function makeRun(sc: Scenario): StressRun {
  const driver: Ev[] = []
  const workers = new Map<number, Ev[]>()
  for (const [id, w] of Object.entries(sc.workers)) {
    const n = Number(id)
    driver.push({ ev: 'spawn', w: n, pid: 1000 + n, t: 0 })
    const events: Ev[] = [{ ev: 'start', t: 1, pid: 1000 + n }, ...w.events]
    if (w.killedAt !== undefined) driver.push({ ev: 'kill', w: n, pid: 1000 + n, t: w.killedAt, why: 'holder' })
    else if (w.exits !== false) events.push({ ev: 'exit', t: 900_000 })
    workers.set(n, events)
  }
  driver.push(...(sc.driver ?? []))
  driver.push({ ev: 'stopAll', t: 800_000 })
  for (const [id, w] of Object.entries(sc.workers)) {
    const n = Number(id)
    driver.push({ ev: 'exit', w: n, pid: 1000 + n, code: w.killedAt !== undefined ? null : 0, signal: w.killedAt !== undefined ? 'SIGKILL' : null, t: 900_001 })
  }
  driver.push({ ev: 'end', t: 950_000 })
  driver.sort((a, b) => ((a.t ?? a.t0) as number) - ((b.t ?? b.t0) as number))
  return {
    meta: { seed: 7, procs: 2, seconds: 1, keys: ['k'], limit: sc.limit ?? 1, fault: null, stopTimeoutMs: 30_000, startT: 0 },
    driver,
    workers,
    leftovers: { before: sc.before ?? [], after: sc.after ?? [] },
    badLines: 0,
  }
}

const kinds = (sc: Scenario): string[] => Object.keys(checkRun(makeRun(sc)).summary.violationCounts).sort()

describe('stress checker', () => {
  it('accepts holders that take turns', () => {
    const res = checkRun(
      makeRun({
        workers: {
          0: { events: [...cycle({ t0: 10, s: 20, t2: 30 }), ...cycle({ t0: 60, s: 70, t2: 80 })] },
          1: { events: cycle({ t0: 25, s: 40, t2: 50 }) },
        },
      }),
    )
    expect(res.violations).toEqual([])
    expect(res.ok).toBe(true)
    expect(res.summary.perKey.k.peakHolders).toBe(1)
    expect(res.summary.ops.grants).toBe(3)
  })

  it('reports two overlapping holders of a limit-1 key, and their shared slot', () => {
    expect(
      kinds({
        workers: {
          0: { events: cycle({ t0: 10, s: 20, t2: 40 }) },
          1: { events: cycle({ t0: 15, s: 30, t2: 50 }) },
        },
      }),
    ).toEqual(['epoch_over_limit', 'over_admission', 'slot_shared'])
  })

  it('reports a grant made while others held through the whole acquire call', () => {
    expect(
      kinds({
        workers: {
          0: { events: cycle({ t0: 10, s: 20, t2: 100 }) },
          1: { events: cycle({ t0: 30, s: 40, t2: 50, slot: 1 }) },
        },
      }),
    ).toEqual(['epoch_over_limit', 'grant_over_limit', 'over_admission'])
  })

  it('allows holders above a lowered limit until they release, but not a new grant beside them', () => {
    const lowered = { ev: 'limit', key: 'k', value: 1, t0: 49, t: 50 }
    // Two holders of limit 2, then the limit drops to 1; they finish; then one new holder.
    expect(
      kinds({
        limit: 2,
        driver: [lowered],
        workers: {
          0: { events: [...cycle({ t0: 10, s: 20, t2: 100, limit: 2 }), ...cycle({ t0: 120, s: 130, t2: 140, limit: 1 })] },
          1: { events: cycle({ t0: 15, s: 25, t2: 110, limit: 2, slot: 1 }) },
        },
      }),
    ).toEqual([])
    // The same, but the new holder (limit 1) is admitted while an old one still holds.
    expect(
      kinds({
        limit: 2,
        driver: [lowered],
        workers: {
          0: { events: [...cycle({ t0: 10, s: 20, t2: 100, limit: 2 }), ...cycle({ t0: 120, s: 130, t2: 140, limit: 1, slot: 0 })] },
          1: { events: cycle({ t0: 15, s: 25, t2: 200, limit: 2, slot: 1 }) },
        },
      }),
    ).toEqual(['grant_over_limit', 'over_admission'])
  })

  it('ends a killed holder at the kill, not before', () => {
    // Worker 0 holds from 20 and is killed at 60; worker 1 is granted at 70: fine.
    expect(kinds({ workers: { 0: { events: cycle({ t0: 10, s: 20 }), killedAt: 60 }, 1: { events: cycle({ t0: 30, s: 70, t2: 80 }) } } })).toEqual([])
    // Granted at 50, before the kill at 60: two holders at once.
    expect(kinds({ workers: { 0: { events: cycle({ t0: 10, s: 20 }), killedAt: 60 }, 1: { events: cycle({ t0: 30, s: 50, t2: 80, slot: 1 }) } } })).toEqual([
      'epoch_over_limit',
      'grant_over_limit',
      'over_admission',
    ])
  })

  it('treats a lease wiped by a lock-root deletion as ended at the deletion, and a lost lease otherwise as a violation', () => {
    const deletion = { ev: 'rmroot', t0: 40, t1: 45, error: null }
    const workers = {
      0: { events: cycle({ t0: 10, s: 20, t2: 100, ok: false }) },
      1: { events: cycle({ t0: 50, s: 60, t2: 70 }) },
    }
    expect(kinds({ driver: [deletion], workers })).toEqual([])
    expect(checkRun(makeRun({ driver: [deletion], workers })).summary.ops.wiped).toBe(1)
    expect(kinds({ workers })).toEqual(['epoch_over_limit', 'grant_over_limit', 'lease_lost', 'over_admission', 'slot_shared'])
  })

  it('excuses a lease wiped while its release was waiting for the gate', () => {
    // "rel" at 50, the root deleted at 60 while release waits (a paused process holds the gate),
    // release answers false at 70; meanwhile worker 1 took the slot at 65.
    const deletion = { ev: 'rmroot', t0: 60, t1: 62, error: null }
    const lost: Ev[] = [
      { ev: 'acq', t0: 10, key: 'k', limit: 1, mode: 'wait', waitMs: 1000 },
      { ev: 'grant', t: 20, key: 'k', slot: 0, fence: 1020, waitedMs: 0.01 },
      { ev: 'rel', t: 50, key: 'k' },
      { ev: 'reld', t: 70, key: 'k', ok: false },
    ]
    const workers = { 0: { events: lost }, 1: { events: cycle({ t0: 55, s: 65, t2: 80 }) } }
    expect(kinds({ driver: [deletion], workers })).toEqual([])
    expect(kinds({ workers })).toEqual(['lease_lost'])
  })

  it('excuses a hold wiped by a deletion whose holder was killed before its release answered', () => {
    // Seen in a CI run (seed 2): worker 0 held slot 0, the root deletion removed its record, worker
    // 1 took slot 0 in the new directory, then worker 0 began its release and was SIGKILLed before
    // it answered. Whether its record was still there is unknown: it counts up to the deletion.
    const deletion = { ev: 'rmroot', t0: 40, t1: 45, error: 'ENOTEMPTY' }
    const unanswered: Ev[] = cycle({ t0: 10, s: 20 }).concat([{ ev: 'rel', t: 90, key: 'k' }])
    const workers = { 0: { events: unanswered, killedAt: 95 }, 1: { events: cycle({ t0: 30, s: 42, t2: 80 }) } }
    expect(kinds({ driver: [deletion], workers })).toEqual([])
    // Without a deletion the same overlap is a real violation.
    expect(kinds({ workers })).toContain('over_admission')
  })

  it('checks a hold whose release succeeded in full even across a deletion', () => {
    const deletion = { ev: 'rmroot', t0: 40, t1: 45, error: null }
    expect(
      kinds({
        driver: [deletion],
        workers: { 0: { events: cycle({ t0: 10, s: 20, t2: 100, ok: true }) }, 1: { events: cycle({ t0: 50, s: 60, t2: 70, slot: 1 }) } },
      }),
    ).toEqual(['epoch_over_limit', 'grant_over_limit', 'over_admission'])
  })

  it('reports fences that do not increase with grant order, and reused fences', () => {
    expect(kinds({ workers: { 0: { events: [...cycle({ t0: 10, s: 20, t2: 30, fence: 9 }), ...cycle({ t0: 40, s: 50, t2: 60, fence: 5 })] } } })).toEqual([
      'fence_order',
    ])
    expect(kinds({ workers: { 0: { events: [...cycle({ t0: 10, s: 20, t2: 30, fence: 5 }), ...cycle({ t0: 40, s: 50, t2: 60, fence: 5 })] } } })).toEqual([
      'fence_order',
    ])
  })

  it('uses the limit of the holder that may have been granted last', () => {
    // A (limit 3) is granted after B (limit 1) began... B's limit-1 grant could have come first.
    const res = kinds({
      limit: 3,
      driver: [{ ev: 'limit', key: 'k', value: 1, t0: 5, t: 6 }, { ev: 'limit', key: 'k', value: 3, t0: 11, t: 12 }],
      workers: {
        0: { events: cycle({ t0: 8, s: 30, t2: 100, limit: 1 }) },
        1: { events: cycle({ t0: 20, s: 25, t2: 100, limit: 3, slot: 1 }) },
      },
    })
    expect(res).toEqual([])
  })

  it('reports errors, unexpected exits, hung workers and litter', () => {
    expect(
      kinds({
        workers: {
          0: { events: [{ ev: 'err', t: 5, phase: 'acquire', key: 'k', code: 'ENOENT', message: 'boom' }] },
          1: { events: cycle({ t0: 10, s: 20, t2: 30 }), exits: false },
        },
        driver: [{ ev: 'hung', w: 1, pid: 1001, t: 830_000 }],
        before: [{ path: 'k-x/slot-0', kind: 'slot', pid: 1000 }],
        after: [{ path: 'k-x/tmp-0123', kind: 'tmp' }],
      }),
    ).toEqual(['deadlock', 'error', 'litter', 'unexpected_exit'])
  })

  it('a takeover notice left for a killed holder is no litter; more notices than killed holders, or a live process\'s queue place, are', () => {
    const killedHolder = { events: cycle({ t0: 10, s: 20, t2: 30 }).slice(0, 2), killedAt: 25 }
    expect(
      kinds({
        workers: { 0: killedHolder, 1: { events: cycle({ t0: 40, s: 50, t2: 60 }) } },
        before: [{ path: 'k-x/slot-0', kind: 'slot', pid: 1000 }],
        after: [{ path: 'k-x/notice-5', kind: 'notice' }],
      }),
    ).toEqual([])
    expect(
      kinds({
        workers: { 0: killedHolder, 1: { events: cycle({ t0: 40, s: 50, t2: 60 }) } },
        after: [
          { path: 'k-x/notice-5', kind: 'notice' },
          { path: 'k-x/notice-6', kind: 'notice' },
        ],
      }),
    ).toEqual(['litter'])
    expect(
      kinds({
        workers: { 0: killedHolder, 1: { events: cycle({ t0: 40, s: 50, t2: 60 }) } },
        before: [{ path: 'k-x/wait-3', kind: 'place', pid: 1001 }],
      }),
    ).toEqual(['litter'])
  })

  it('reports a waiter that answers far past its deadline, unless it was paused', () => {
    const late: Ev[] = [
      { ev: 'acq', t0: 10, key: 'k', limit: 1, mode: 'wait', waitMs: 100 },
      { ev: 'busy', t: 6_000_010, key: 'k', mode: 'wait', waitedMs: 6000 },
    ]
    expect(kinds({ workers: { 0: { events: late } } })).toEqual(['deadline_overrun'])
    const paused = [
      { ev: 'stop', w: 0, t: 50, ms: 5900 },
      { ev: 'cont', w: 0, t: 5_950_000 },
    ]
    expect(kinds({ driver: paused, workers: { 0: { events: late } } })).toEqual([])
  })

  it('accepts records of killed holders before the final sweep', () => {
    expect(kinds({ workers: { 0: { events: cycle({ t0: 10, s: 20 }), killedAt: 60 } }, before: [{ path: 'k-x/slot-0', kind: 'slot', pid: 1000 }] })).toEqual([])
  })

  describe('weighted holds', () => {
    it('accepts weights that fit the limit exactly', () => {
      const res = checkRun(
        makeRun({
          limit: 3,
          workers: {
            0: { events: cycle({ t0: 10, s: 20, t2: 100, limit: 3, weight: 2 }) },
            1: { events: cycle({ t0: 30, s: 40, t2: 90, limit: 3, weight: 1, slot: 1 }) },
          },
        }),
      )
      expect(res.violations).toEqual([])
      expect(res.summary.perKey.k).toMatchObject({ peakHolders: 2, peakUsed: 3, heavyShared: 1 })
    })

    it('reports two holders within the count but over the limit in weight', () => {
      // Two holders of a limit-3 key: a count-only check sees 2 <= 3; their weights sum to 4.
      const res = checkRun(
        makeRun({
          limit: 3,
          workers: {
            0: { events: cycle({ t0: 10, s: 20, t2: 100, limit: 3, weight: 2 }) },
            1: { events: cycle({ t0: 30, s: 40, t2: 90, limit: 3, weight: 2, slot: 1 }) },
          },
        }),
      )
      expect(Object.keys(res.summary.violationCounts).sort()).toEqual(['epoch_over_limit', 'grant_over_limit', 'over_admission'])
      expect(res.violations.find((v) => v.kind === 'over_admission')).toMatchObject({ holders: 2, used: 4, limitBound: 3 })
    })

    it('reports an exclusive hold beside a reader, and a heavy hold beside holders above a lowered limit', () => {
      // weight: limit is exclusive: one reader of weight 1 beside it is one too many.
      expect(
        kinds({
          limit: 4,
          workers: {
            0: { events: cycle({ t0: 10, s: 20, t2: 100, limit: 4, weight: 1 }) },
            1: { events: cycle({ t0: 30, s: 40, t2: 90, limit: 4, weight: 4, slot: 1 }) },
          },
        }),
      ).toEqual(['epoch_over_limit', 'grant_over_limit', 'over_admission'])
      // Two weight-1 holders of limit 3; the limit drops to 2; a weight-2 hold granted beside
      // them has only its own limit to go by: 1 + 1 + 2 > 2 (and > 3).
      expect(
        kinds({
          limit: 3,
          driver: [{ ev: 'limit', key: 'k', value: 2, t0: 49, t: 50 }],
          workers: {
            0: { events: cycle({ t0: 10, s: 20, t2: 100, limit: 3, weight: 1 }) },
            1: { events: [...cycle({ t0: 15, s: 25, t2: 110, limit: 3, weight: 1, slot: 1 }), ...cycle({ t0: 60, s: 70, t2: 80, limit: 2, weight: 2, slot: 2 })] },
          },
        }),
      ).toContain('over_admission')
    })

    it('ends a killed heavy holder at the kill: a grant after it fits, one before it does not', () => {
      const heavy = cycle({ t0: 10, s: 20, limit: 2, weight: 2 })
      expect(kinds({ limit: 2, workers: { 0: { events: heavy, killedAt: 60 }, 1: { events: cycle({ t0: 30, s: 70, t2: 80, limit: 2, weight: 1 }) } } })).toEqual([])
      expect(kinds({ limit: 2, workers: { 0: { events: heavy, killedAt: 60 }, 1: { events: cycle({ t0: 30, s: 50, t2: 80, limit: 2, weight: 1, slot: 1 }) } } })).toContain(
        'over_admission',
      )
    })

    it('reports a lease whose weight is not the one asked for', () => {
      expect(kinds({ limit: 3, workers: { 0: { events: cycle({ t0: 10, s: 20, t2: 30, limit: 3, weight: 2, leaseWeight: 1 }) } } })).toEqual(['weight_mismatch'])
    })
  })

  describe('fairness among fair waiters', () => {
    // A limit-1 key held by worker 9 over [5, 38); A queues first (its first busy answer came from
    // the attempt [13, 14]), B queues after it ([21, 22]); the slot frees at 38.
    const holder = { events: cycle({ t0: 4, s: 5, t2: 38, fair: true, fence: 1 }) }
    const a = (o: Partial<HoldSpec> = {}): HoldSpec => ({ t0: 12, q: [13, 14], s: 62, c: [60, 61], t2: 70, fair: true, fence: 3, ...o })
    const b = (o: Partial<HoldSpec> = {}): HoldSpec => ({ t0: 20, q: [21, 22], s: 42, c: [40, 41], t2: 50, fair: true, fence: 2, ...o })

    it('accepts waiters served in the order they queued', () => {
      const res = checkRun(makeRun({ workers: { 9: holder, 0: { events: cycle(a({ s: 42, c: [40, 41], t2: 50, fence: 2 })) }, 1: { events: cycle(b({ s: 62, c: [60, 61], t2: 70, fence: 3 })) } } }))
      expect(res.violations).toEqual([])
      expect(res.summary.fairness).toMatchObject({ fairWaiters: 2, pairs: 1, overtakes: 0 })
    })

    it('reports a later waiter granted while an earlier one still waited', () => {
      const res = checkRun(makeRun({ workers: { 9: holder, 0: { events: cycle(a()) }, 1: { events: cycle(b()) } } }))
      expect(Object.keys(res.summary.violationCounts)).toEqual(['fairness_overtake'])
      expect(res.violations[0]).toMatchObject({ waiter: { w: 0, queuedBy: 14, grantClaimFrom: 60 }, overtaker: { w: 1, arrivedFrom: 21, grantedBy: 41, queued: true } })
      expect(res.summary.fairness).toMatchObject({ fairWaiters: 2, overtakes: 1, overtakenWaiters: 1, maxOvertakes: 1, tryOvertakes: 0 })
    })

    it('reports a fair try (or a first attempt) granted while a fair waiter had a place', () => {
      const res = checkRun(makeRun({ workers: { 9: holder, 0: { events: cycle(a()) }, 1: { events: cycle({ t0: 39, s: 42, c: [40, 41], t2: 50, fair: true, mode: 'try', fence: 2 }) } } }))
      expect(res.summary.violationCounts).toEqual({ fairness_overtake: 1 })
      expect(res.summary.fairness).toMatchObject({ overtakes: 1, tryOvertakes: 1 })
    })

    it('counts each overtake: a waiter passed by two later arrivals', () => {
      const c = cycle({ t0: 43, q: [44, 45], s: 55, c: [52, 53], t2: 58, fair: true, fence: 2.5 })
      const res = checkRun(makeRun({ workers: { 9: holder, 0: { events: cycle(a()) }, 1: { events: cycle(b()) }, 2: { events: c } } }))
      expect(res.summary.violationCounts).toEqual({ fairness_overtake: 2 })
      expect(res.summary.fairness).toMatchObject({ overtakes: 2, overtakenWaiters: 1, maxOvertakes: 2 })
    })

    it('counts nothing when the order of arrival is not certain', () => {
      // B's first busy attempt began (15) before A's returned (16): either place may be first.
      expect(kinds({ workers: { 9: holder, 0: { events: cycle(a({ q: [13, 16] })) }, 1: { events: cycle(b({ q: [15, 17] })) } } })).toEqual([])
      // A's granting attempt began (40.5) before B's returned (41): either grant may be first.
      expect(kinds({ workers: { 9: holder, 0: { events: cycle(a({ c: [40.5, 61], s: 62 })) }, 1: { events: cycle(b()) } } })).toEqual([])
    })

    it('leaves barging acquires out on either side', () => {
      expect(kinds({ workers: { 9: holder, 0: { events: cycle(a({ fair: false })) }, 1: { events: cycle(b()) } } })).toEqual([])
      expect(kinds({ workers: { 9: holder, 0: { events: cycle(a()) }, 1: { events: cycle(b({ fair: false })) } } })).toEqual([])
    })

    it('leaves out waiters killed, timed out or aborted before their grant', () => {
      // A queued and was killed while waiting: its place died with it.
      expect(kinds({ workers: { 9: holder, 0: { events: acq(a()), killedAt: 30 }, 1: { events: cycle(b()) } } })).toEqual([])
      // A queued and gave up (lease_busy) before B was granted.
      const gaveUp: Ev[] = [...acq(a()), { ev: 'busy', t: 39, key: 'k', mode: 'wait', waitedMs: 0.027 }]
      expect(kinds({ workers: { 9: holder, 0: { events: gaveUp }, 1: { events: cycle(b()) } } })).toEqual([])
    })

    it('leaves out a wait across a lock-root deletion, and excuses nothing else', () => {
      const deletion = { ev: 'rmroot', t0: 30, t1: 31, error: null }
      const res = checkRun(makeRun({ driver: [deletion], workers: { 9: holder, 0: { events: cycle(a()) }, 1: { events: cycle(b()) } } }))
      expect(res.violations).toEqual([])
      // Both waits spanned the deletion: neither is judged.
      expect(res.summary.fairness).toMatchObject({ excludedWiped: 2, fairWaiters: 0, overtakes: 0 })
      // A paused waiter is alive and keeps its place; another process's kill changes no order.
      const paused = [
        { ev: 'stop', w: 0, t: 30, ms: 20 },
        { ev: 'cont', w: 0, t: 55 },
      ]
      const victim = { events: acq({ t0: 25, q: [26, 27], fair: true }), killedAt: 35 }
      expect(kinds({ driver: paused, workers: { 9: holder, 0: { events: cycle(a()) }, 1: { events: cycle(b()) }, 5: victim } })).toEqual(['fairness_overtake'])
    })
  })
})
