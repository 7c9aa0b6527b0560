// Types for control.mjs (the harness is plain JavaScript so it runs without a build step).
import type { CheckResult, StressRun } from './check.mjs'
export type ControlName = 'noGate' | 'reclaimOnSuspicion' | 'overAdmit' | 'weightBlind' | 'unfair' | 'pgOverAdmit' | 'pgWrongLockKey'
export type Verdict = 'caught' | 'missed' | 'inconclusive'
export interface ControlAttempt {
  seed: number
  command: string
  caught: boolean
  rallies: { opened: number; scanMet: number; met: number }
  violationCounts: Record<string, number>
  runDir: string
  kept?: boolean
  result: CheckResult & { runDir: string; command: string; seed: number }
}
export interface ControlOutcome {
  name: ControlName
  engine: 'broken' | 'intact'
  verdict: Verdict
  attempts: ControlAttempt[]
}
export const NEGATIVE_CONTROLS: Record<
  ControlName,
  {
    fault: string
    limit: number
    rally: { at: 'afterScan' | 'holding'; size: number; opener?: 'hidden'; memberWeight?: number; weightSum?: number } | null
    /** The violation that counts as a catch (default EXPECTED_KIND). */
    expect?: string
    fairShare?: number
    weights?: Record<string, number>
    store?: 'file' | 'postgres'
    ttlMs?: number
    rallyWaitMs?: number
  }
>
export const EXPECTED_KIND: string
export const CONTROL_WEIGHTS: Record<string, number>
export const NETWORKED_CONTROL_WEIGHTS: Record<string, number>
export function controlCommand(name: ControlName, seed: number, o: { procs: number; seconds: number; engine?: string }): string
export function runNegativeControl(
  name: ControlName,
  options?: {
    seed?: number
    procs?: number
    seconds?: number
    attempts?: number
    engine?: 'broken' | 'intact'
    rallyWaitMs?: number
    log?: (message: string) => void
    onAttempt?: (attempt: ControlAttempt) => void
    check?: (run: StressRun) => CheckResult
    /** Another build's dist/internal.js (default: this package's). */
    internal?: string
  },
): Promise<ControlOutcome>
export function formatControl(out: ControlOutcome): string
