// I1 Bound: real processes contend for a key; an independent interval check over their
// CLOCK_MONOTONIC logs proves at most `limit` held at once — and that the same check catches an
// engine that over-admits.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { type Interval, JsonChild, cleanup, freshRoot, leaseLib, peakConcurrency, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

interface Run {
  intervals: Array<Interval & { fence: number }>
  busy: number
  lost: number
  fences: number[]
}

/**
 * Fences are unique, and a grant that certainly came after another (its logged acquire follows
 * the other's logged release) carries a larger fence. Returns the number of ordered pairs checked.
 */
function checkFences(run: Run): number {
  expect(new Set(run.fences).size).toBe(run.fences.length)
  const byRelease = [...run.intervals].sort((a, b) => (a.end < b.end ? -1 : a.end > b.end ? 1 : 0))
  let pairs = 0
  for (const later of run.intervals) {
    for (const earlier of byRelease) {
      if (earlier.end >= later.start) break
      pairs++
      if (earlier.fence >= later.fence) throw new Error(`fence ${later.fence} granted after ${earlier.fence} was released`)
    }
  }
  return pairs
}

async function contend(opts: { procs: number; limit: number; cycles: number; holdMs: number; faults?: Record<string, unknown> }): Promise<Run> {
  const lib = await leaseLib()
  const { root } = freshRoot()
  const cfg = { root, key: 'peak', limit: opts.limit, cycles: opts.cycles, holdMs: opts.holdMs, faults: opts.faults ?? {} }
  const kids = Array.from({ length: opts.procs }, () => new JsonChild('contender.mjs', [lib, JSON.stringify(cfg)]))
  await Promise.all(kids.map((k) => k.expect('ready')))
  for (const k of kids) k.send('go')
  const run: Run = { intervals: [], busy: 0, lost: 0, fences: [] }
  await Promise.all(
    kids.map(async (k, n) => {
      let open: { t: bigint; fence: number } | null = null
      for (;;) {
        const m = await k.next()
        if (m.ev === 'acq') {
          expect(open).toBeNull()
          open = { t: BigInt(m.t as string), fence: m.fence as number }
          run.fences.push(m.fence as number)
        } else if (m.ev === 'rel') {
          if (open === null) throw new Error('release logged without an acquire')
          run.intervals.push({ who: `p${n}`, start: open.t, end: BigInt(m.t as string), fence: open.fence })
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

describe('peak holders', () => {
  it('never exceeds the limit while 6 processes contend for 2 slots', async () => {
    const run = await contend({ procs: 6, limit: 2, cycles: 15, holdMs: 5 })
    expect(run.intervals).toHaveLength(6 * 15)
    const peak = peakConcurrency(run.intervals)
    expect(peak).toBeLessThanOrEqual(2)
    // The run proved something only if the key was really contended.
    expect(run.busy).toBeGreaterThan(0)
    expect(peak).toBe(2)
    expect(run.lost).toBe(0)
    expect(checkFences(run)).toBeGreaterThan(0)
  })

  it('as a mutex (limit 1): one holder at a time, fences strictly increasing in grant order', async () => {
    const run = await contend({ procs: 4, limit: 1, cycles: 10, holdMs: 1 })
    expect(peakConcurrency(run.intervals)).toBe(1)
    expect(run.busy).toBeGreaterThan(0)
    // With one holder at a time, grant order is the order of the logged acquires.
    const fences = [...run.intervals].sort((a, b) => (a.start < b.start ? -1 : 1)).map((iv) => iv.fence)
    for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number)
    checkFences(run)
  })

  it('negative control: the same check catches an engine that admits one too many', async () => {
    // Six processes on a key that (wrongly) admits three: with holds of 15 ms three overlap in
    // practically every run; a rerun or two absorbs a pathologically starved machine.
    let peak = 0
    for (let attempt = 0; attempt < 3 && peak <= 2; attempt++) {
      const run = await contend({ procs: 6, limit: 2, cycles: 8, holdMs: 15, faults: { overAdmit: 1 } })
      peak = peakConcurrency(run.intervals)
    }
    expect(peak).toBeGreaterThan(2)
  })
})

describe('peakConcurrency', () => {
  const iv = (start: number, end: number): Interval => ({ who: 'x', start: BigInt(start), end: BigInt(end) })
  it('counts overlaps and treats touching intervals as disjoint', () => {
    expect(peakConcurrency([])).toBe(0)
    expect(peakConcurrency([iv(0, 10), iv(10, 20)])).toBe(1)
    expect(peakConcurrency([iv(0, 10), iv(9, 20)])).toBe(2)
    expect(peakConcurrency([iv(0, 100), iv(10, 20), iv(15, 30), iv(40, 50)])).toBe(3)
  })
})
