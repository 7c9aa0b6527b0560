// The chaos stress on the PostgreSQL store (--store postgres: its own throwaway cluster): a bounded
// run with SIGKILL and SIGSTOP of holders, server restarts and limit changes must do enough work
// and come out clean, and the same harness against a faulty claim function must be caught.
// Runs the CLIs on the dist/ that vitest's global setup just built.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const STRESS = join(ROOT, 'scripts', 'stress')

interface Outcome {
  code: number | null
  stdout: string
}

function node(script: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(STRESS, script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, stdout }))
  })
}

function report<T>(out: Outcome): T {
  const start = out.stdout.indexOf('{')
  const end = out.stdout.lastIndexOf('\n}')
  try {
    return JSON.parse(out.stdout.slice(start, end + 2)) as T
  } catch {
    throw new Error(`no JSON report (exit ${out.code}); stdout: ${out.stdout}`)
  }
}

interface RunReport {
  ok: boolean
  command: string
  runDir: string
  summary: Record<string, any> & { violationCounts: Record<string, number> }
  violations: Array<{ kind: string }>
}

describe('chaos stress on the PostgreSQL store', () => {
  it('a run with kills, pauses, server restarts and limit changes does enough work and finds no violation', async () => {
    const out = await node('run.mjs', [
      '--json',
      ...['--store', 'postgres', '--procs', '4', '--seconds', '12', '--limit', '2', '--keys', '2', '--seed', '20261130'],
      ...['--min-grants', '100', '--min-kills', '5', '--min-limit-changes', '2', '--min-restarts', '2', '--max-seconds', '90'],
    ])
    const r = report<RunReport>(out)
    const s = r.summary
    expect({ violations: r.violations, command: r.command, logs: r.runDir }).toEqual({ violations: [], command: r.command, logs: r.runDir })
    expect(s.work).toMatchObject({ done: true })
    expect(out.code).toBe(0)
    expect(s.store).toBe('postgres')
    expect(s.ops.grants).toBeGreaterThanOrEqual(100)
    expect(s.chaos.kills).toBeGreaterThanOrEqual(5)
    expect(s.chaos.restarts).toBeGreaterThanOrEqual(2)
    expect(s.stop.hung).toBe(0)
    expect(s.leftovers.afterSweep.entries).toEqual([])
    expect(fs.existsSync(r.runDir)).toBe(false)
  }, 180_000)

  it.each([
    ['pgOverAdmit', 'a claim function that admits one holder too many', 6],
    ['pgWrongLockKey', 'a session witness that tests the wrong lock (every holder looks gone)', 8],
  ])('negative control %s: %s is caught', async (name, _what, seed) => {
    const out = await node('control.mjs', [String(name), '--seed', String(seed), '--attempts', '3', '--json'])
    const r = report<{ verdict: string; attempts: Array<{ runDir: string; violationCounts: Record<string, number> }> }>(out)
    expect({ verdict: r.verdict, logs: r.attempts.map((a) => a.runDir) }).toEqual({ verdict: 'caught', logs: expect.anything() })
    expect(out.code).toBe(0)
    expect(r.attempts.at(-1)?.violationCounts.over_admission).toBeGreaterThan(0)
  }, 180_000)
})
