// A short, bounded chaos run (fixed seed) must come out clean, and the same harness against a
// deliberately broken engine (FileStore's test-only `faults`) must be caught. Runs the CLI
// (scripts/stress/run.mjs) on the dist/ that vitest's global setup just built.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const RUN = join(ROOT, 'scripts', 'stress', 'run.mjs')

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
  json: {
    ok: boolean
    seed: number
    command: string
    summary: Record<string, any> & { violationCounts: Record<string, number> }
    violations: Array<{ kind: string }>
  }
}

function stress(args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, '--json', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    child.once('error', reject)
    child.once('exit', (code) => {
      const start = stdout.indexOf('{')
      const end = stdout.lastIndexOf('\n}')
      try {
        resolve({ code, stdout, stderr, json: JSON.parse(stdout.slice(start, end + 2)) })
      } catch {
        reject(new Error(`no JSON report (exit ${code}); stdout: ${stdout}\nstderr: ${stderr}`))
      }
    })
  })
}

describe('chaos stress harness', () => {
  it('a bounded chaos run with kills, pauses, limit changes and lock-root deletions finds no violation', async () => {
    const out = await stress(['--procs', '4', '--seconds', '14', '--limit', '2', '--keys', '2', '--seed', '20250101'])
    const s = out.json.summary
    // On failure, show the violations and the command that reproduces the schedule.
    expect({ violations: out.json.violations, command: out.json.command }).toEqual({ violations: [], command: out.json.command })
    expect(out.code).toBe(0)
    expect(out.json.ok).toBe(true)
    // The run really was chaotic and really did work.
    expect(s.ops.grants).toBeGreaterThan(100)
    expect(s.chaos.kills).toBeGreaterThan(5)
    expect(s.chaos.limitChanges).toBeGreaterThan(2)
    expect(s.stop.hung).toBe(0)
    expect(s.leftovers.afterSweep.entries).toEqual([])
  }, 120_000)

  it('negative control: the same harness catches an engine without its gate', async () => {
    const out = await stress(['--procs', '4', '--seconds', '5', '--limit', '1', '--keys', '1', '--seed', '3', '--fault', 'noGate'])
    expect(out.code).toBe(1)
    expect(out.json.ok).toBe(false)
    expect(Object.keys(out.json.summary.violationCounts)).toContain('over_admission')
    // A failing run names its seed and the command that reproduces it.
    expect(out.stdout).toContain('FAILED: seed 3; reproduce the schedule with: npm run stress -- --procs 4 --seconds 5 --limit 1 --keys 1 --seed 3 --fault noGate')
  }, 120_000)

  it('negative control: the same harness catches an engine that reclaims holders it merely cannot verify', async () => {
    const out = await stress(['--procs', '4', '--seconds', '5', '--limit', '1', '--keys', '1', '--seed', '4', '--fault', 'reclaimOnSuspicion'])
    expect(out.code).toBe(1)
    expect(Object.keys(out.json.summary.violationCounts)).toEqual(expect.arrayContaining(['lease_lost', 'over_admission']))
  }, 120_000)
})
