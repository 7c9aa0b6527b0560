// The chaos checker on a networked store (meta.store 'postgres'): a hold that was not confirmed
// released ends at its holder's last logged evidence that lease.held() was true. These synthetic
// logs pin down that a correct engine is never failed for a holder stopped past its TTL (or killed
// while stopped) and that a real double grant is still caught; and the other networked rules
// (held after lost, outages during a server restart, litter of holders that lost their hold).
import { describe, expect, it } from 'vitest'
import { type StressRun, checkRun } from '../scripts/stress/check.mjs'

type Ev = Record<string, unknown>

const TTL_MS = 2000
const GRACE_US = (2 * TTL_MS + 1000) * 1000

interface Worker {
  events: Ev[]
  killedAt?: number
}

function makeRun(workers: Record<number, Worker>, driverEvents: Ev[] = [], before: Ev[] = []): StressRun {
  const driver: Ev[] = [...driverEvents]
  const logs = new Map<number, Ev[]>()
  for (const [id, w] of Object.entries(workers)) {
    const n = Number(id)
    driver.push({ ev: 'spawn', w: n, pid: 1000 + n, t: 0 })
    const events: Ev[] = [{ ev: 'start', t: 1, pid: 1000 + n }, ...w.events]
    if (w.killedAt !== undefined) driver.push({ ev: 'kill', w: n, pid: 1000 + n, t: w.killedAt, why: 'holder' })
    else events.push({ ev: 'exit', t: 90_000_000 })
    driver.push({ ev: 'exit', w: n, pid: 1000 + n, code: w.killedAt !== undefined ? null : 0, signal: w.killedAt !== undefined ? 'SIGKILL' : null, t: 90_000_001 })
    logs.set(n, events)
  }
  driver.push({ ev: 'stopAll', t: 80_000_000 }, { ev: 'end', t: 95_000_000 })
  driver.sort((a, b) => ((a.t ?? a.t0) as number) - ((b.t ?? b.t0) as number))
  return {
    meta: { seed: 1, procs: 2, seconds: 1, keys: ['k'], limit: 1, fault: null, stopTimeoutMs: 30_000, startT: 0, store: 'postgres', ttlMs: TTL_MS },
    driver,
    workers: logs,
    leftovers: { before, after: [] },
    badLines: 0,
  }
}

const acq = (t0: number): Ev => ({ ev: 'acq', t0, key: 'k', limit: 1, mode: 'wait', waitMs: 3000 })
const grant = (t: number, fence: number): Ev => ({ ev: 'grant', t, key: 'k', slot: 0, fence, waitedMs: 1 })
const held = (t: number): Ev => ({ ev: 'held', t })
const rel = (t: number, isHeld: boolean, ok: boolean): Ev[] => [
  { ev: 'rel', t, key: 'k', held: isHeld },
  { ev: 'reld', t: t + 1, key: 'k', ok },
]
const lost = (t: number, reason: string): Ev => ({ ev: 'lost', t, key: 'k', reason })

const kinds = (run: StressRun): string[] => Object.keys(checkRun(run).summary.violationCounts).sort()

describe('stress checker, networked store', () => {
  it('a holder stopped past its TTL, whose slot went to another meanwhile, is no violation', () => {
    const run = makeRun(
      {
        // Granted at 20, held() true until 40, stopped at 45; resumed at 5 s, its signal fired.
        0: { events: [acq(10), grant(20, 1), held(30), held(40), lost(5_000_001, 'expired'), ...rel(5_000_002, false, false)] },
        // Granted at 3 s, after the stopped holder's deadline.
        1: { events: [acq(50), grant(3_000_000, 2), held(3_000_010), ...rel(3_100_000, true, true)] },
      },
      [
        { ev: 'stop', w: 0, t: 45, ms: 5000 },
        { ev: 'cont', w: 0, t: 5_000_000 },
      ],
    )
    expect(kinds(run)).toEqual([])
    expect(checkRun(run).summary.ops.lostHolds).toBe(1)
  })

  it('a holder killed while stopped counts only up to its last evidence of holding', () => {
    const run = makeRun(
      {
        0: { events: [acq(10), grant(20, 1), held(30)], killedAt: 5_000_000 },
        1: { events: [acq(50), grant(3_000_000, 2), ...rel(3_100_000, true, true)] },
      },
      [{ ev: 'stop', w: 0, t: 35, ms: 6000 }],
    )
    expect(kinds(run)).toEqual([])
  })

  it('catches a slot granted while its holder still found its hold held (a real double grant)', () => {
    const victim = [acq(10), grant(20, 1)]
    for (let t = 500_000; t <= 3_500_000; t += 500_000) victim.push(held(t))
    victim.push(lost(3_600_000, 'lost'), ...rel(3_700_000, false, false))
    const run = makeRun({
      0: { events: victim },
      1: { events: [acq(50), grant(3_000_000, 2), ...rel(3_100_000, true, true)] },
    })
    expect(kinds(run)).toContain('over_admission')
  })

  it('catches a hold still held() after its signal fired', () => {
    const run = makeRun({ 0: { events: [acq(10), grant(20, 1), lost(30, 'connection_lost'), held(40), ...rel(50, false, false)] } })
    expect(kinds(run)).toEqual(['held_after_lost'])
  })

  it('store_unavailable is expected during a server restart and its grace, an error after', () => {
    const restart = { ev: 'restart', t0: 100_000, t1: 200_000, mode: 'fast', error: null }
    const err = (t: number): Ev => ({ ev: 'err', t, phase: 'acquire', key: 'k', code: 'store_unavailable', name: 'LeaseError', message: 'down' })
    expect(kinds(makeRun({ 0: { events: [acq(90_000), err(150_000)] } }, [restart]))).toEqual([])
    const late = 200_000 + GRACE_US + 10
    expect(kinds(makeRun({ 0: { events: [acq(late - 5), err(late)] } }, [restart]))).toEqual(['error'])
    // A worker paused through the restart learns of it later: still expected.
    expect(
      kinds(makeRun({ 0: { events: [acq(late - 5), err(late)] } }, [restart, { ev: 'stop', w: 0, t: 50_000, ms: 9000 }, { ev: 'cont', w: 0, t: late - 10 }])),
    ).toEqual([])
  })

  it('a row left by a holder that lost its hold is no litter; one left by a holder that never did is', () => {
    const workers = {
      0: { events: [acq(10), grant(20, 1), lost(30, 'connection_lost'), ...rel(40, false, false)] },
      1: { events: [acq(50), grant(60, 2), ...rel(70, true, true)] },
    }
    expect(kinds(makeRun(workers, [], [{ path: 'k/slot-0', kind: 'slot', pid: 1000 }]))).toEqual([])
    expect(kinds(makeRun(workers, [], [{ path: 'k/slot-0', kind: 'slot', pid: 1001 }]))).toEqual(['litter'])
  })
})
