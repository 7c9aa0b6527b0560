// A bounded chaos run (fixed seed) must come out clean after doing enough work, and the same
// harness against deliberately broken engines (FileStore's test-only `faults`) must catch them.
// The negative controls force the fault's window (a rally of limit + 1 holders, see
// scripts/stress/control.mjs), so a broken engine is caught on every run however loaded the
// machine; and they are shown not to pass vacuously: with the engine intact they do not report a
// catch, and with a checker that cannot see the fault they fail. Runs the CLIs on the dist/ that
// vitest's global setup just built. A failing run keeps its logs and the assertion message names
// their directory; every other run removes them.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { type CheckResult, type StressRun, checkRun } from '../scripts/stress/check.mjs'
import { type ControlOutcome, runNegativeControl } from '../scripts/stress/control.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const STRESS = join(ROOT, 'scripts', 'stress')

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
}

function node(script: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(STRESS, script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** The JSON report the CLI printed with --json (the lines after it are for people). */
function report<T>(out: Outcome): T {
  const start = out.stdout.indexOf('{')
  const end = out.stdout.lastIndexOf('\n}')
  try {
    return JSON.parse(out.stdout.slice(start, end + 2)) as T
  } catch {
    throw new Error(`no JSON report (exit ${out.code}); stdout: ${out.stdout}\nstderr: ${out.stderr}`)
  }
}

interface RunReport {
  ok: boolean
  seed: number
  command: string
  runDir: string
  summary: Record<string, any> & { violationCounts: Record<string, number> }
  violations: Array<{ kind: string }>
}

type ControlReport = Omit<ControlOutcome, 'attempts'> & {
  attempts: Array<Omit<ControlOutcome['attempts'][number], 'result'> & { summary: RunReport['summary'] }>
}

// Run directories a test keeps on purpose (a control expected to fail), removed after it.
const kept: string[] = []
afterEach(() => {
  for (const d of kept.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

describe('chaos stress harness', () => {
  it('a chaos run with kills, pauses, limit changes and lock-root deletions does enough work and finds no violation', async () => {
    // The work floor makes the run longer on a loaded machine instead of proving less.
    const out = await node('run.mjs', [
      '--json',
      ...['--procs', '4', '--seconds', '14', '--limit', '2', '--keys', '2', '--seed', '20250101'],
      ...['--min-grants', '100', '--min-kills', '5', '--min-limit-changes', '2', '--max-seconds', '90'],
    ])
    const r = report<RunReport>(out)
    const s = r.summary
    // On failure, show the violations, the command that reproduces the schedule and the kept logs.
    expect({ violations: r.violations, command: r.command, logs: r.runDir }).toEqual({ violations: [], command: r.command, logs: r.runDir })
    expect(s.work).toMatchObject({ done: true })
    expect(out.code).toBe(0)
    expect(r.ok).toBe(true)
    // The run really was chaotic and really did work (guaranteed by the floor, checked from the logs).
    expect(s.ops.grants).toBeGreaterThanOrEqual(100)
    expect(s.chaos.kills).toBeGreaterThanOrEqual(5)
    expect(s.chaos.limitChanges).toBeGreaterThanOrEqual(2)
    expect(s.stop.hung).toBe(0)
    expect(s.leftovers.afterSweep.entries).toEqual([])
    // Heavy holds were granted, and fair waiters queued behind each other, so the weight sum and
    // the order check had matter to judge (that they see what they must: the negative controls).
    expect(s.ops.heavyGrants).toBeGreaterThan(0)
    expect(s.fairness.fairWaiters).toBeGreaterThan(0)
    expect(s.fairness.pairs).toBeGreaterThan(0)
    expect(s.fairness.overtakes).toBe(0)
    expect(fs.existsSync(r.runDir)).toBe(false)
  }, 180_000)

  for (const [name, seed] of [
    ['noGate', 3],
    ['reclaimOnSuspicion', 4],
    ['weightBlind', 9],
    ['unfair', 10],
  ] as const) {
    it(`negative control: the same harness catches the ${name} engine`, async () => {
      const out = await node('control.mjs', [name, '--seed', String(seed), '--attempts', '3', '--json'])
      const r = report<ControlReport>(out)
      const last = r.attempts.at(-1)
      expect({ verdict: r.verdict, logs: r.attempts.map((a) => a.runDir) }).toEqual({ verdict: 'caught', logs: expect.anything() })
      expect(out.code).toBe(0)
      expect(last?.violationCounts[name === 'unfair' ? 'fairness_overtake' : 'over_admission']).toBeGreaterThan(0)
      // Each attempt names its seed and the command that replays it; a caught one leaves no logs.
      expect(out.stdout).toContain(`reproduce: node scripts/stress/control.mjs ${name} --seed ${last?.seed} --procs 4 --seconds 6 --attempts 1`)
      for (const a of r.attempts) expect(fs.existsSync(a.runDir)).toBe(false)
    }, 180_000)
  }

  it('negative control: with the engine intact no rally meets, nothing is reported, and the control does not claim a catch', async () => {
    const out = await node('control.mjs', ['noGate', '--seed', '3', '--attempts', '1', '--engine', 'intact', '--json'])
    const r = report<ControlReport>(out)
    const [a] = r.attempts
    expect(r.verdict).toBe('inconclusive')
    expect(out.code).toBe(0)
    // Rallies were offered (the broken engine meets them every time) but the gate let none meet.
    expect(a?.rallies.opened).toBeGreaterThan(0)
    expect(a?.rallies.scanMet).toBe(0)
    expect(a?.rallies.met).toBe(0)
    expect(a?.violationCounts).toEqual({})
    expect(a?.summary.ops.grants).toBeGreaterThan(0)
    expect(fs.existsSync(a?.runDir ?? '')).toBe(false)
  }, 180_000)

  it('negative control: with the engine intact, waiters paused in the queue are overtaken by nobody', async () => {
    const out = await node('control.mjs', ['unfair', '--seed', '10', '--attempts', '1', '--engine', 'intact', '--json'])
    const r = report<ControlReport>(out)
    const [a] = r.attempts
    // Fair waiters did queue behind one another and were paused there: the check had matter.
    expect(a?.summary.chaos.stops).toBeGreaterThan(0)
    expect(a?.summary.fairness.fairWaiters).toBeGreaterThan(0)
    expect({ verdict: r.verdict, violations: a?.violationCounts, logs: a?.runDir }).toEqual({ verdict: 'inconclusive', violations: {}, logs: a?.runDir })
    expect(out.code).toBe(0)
  }, 180_000)

  it('negative control: a checker that counts holders instead of summing weights misses the weight-blind engine', async () => {
    // The weight-blind engine never admits more holders than the limit: only the weight sum sees it.
    const countOnly = (run: StressRun): CheckResult => {
      const workers = new Map([...run.workers].map(([w, events]) => [w, events.map((e) => (e.ev === 'acq' || e.ev === 'grant' ? { ...e, weight: 1, leaseWeight: 1, engineWeight: 1 } : e))]))
      return checkRun({ ...run, workers })
    }
    const out = await runNegativeControl('weightBlind', { seed: 9, attempts: 3, onAttempt: (a) => kept.push(a.runDir), check: countOnly })
    expect(out.verdict).toBe('missed')
    const last = out.attempts.at(-1)
    expect(last?.rallies.met).toBeGreaterThan(0)
    expect(last?.violationCounts).toEqual({})
    expect(last?.result.summary.perKey.alpha.peakHolders).toBeLessThanOrEqual(2)
  }, 180_000)

  it('negative control: a checker blind to over-admission makes the control fail, not pass', async () => {
    const out = await runNegativeControl('noGate', {
      seed: 3,
      attempts: 3,
      onAttempt: (a) => kept.push(a.runDir),
      // The real checker's summary (rallies included), with every violation dropped.
      check: (run) => {
        const res = checkRun(run)
        return { ok: true, violations: [], summary: { ...res.summary, violationCounts: {} } }
      },
    })
    expect(out.verdict).toBe('missed')
    expect(out.attempts.at(-1)?.rallies.met).toBeGreaterThan(0)
    // A failed control keeps its logs for the post-mortem.
    expect(out.attempts.every((a) => a.kept === true && fs.existsSync(a.runDir))).toBe(true)
  }, 180_000)
})
