// Types for driver.mjs (the harness is plain JavaScript so it runs without a build step).
import type { CheckResult } from './check.mjs'
export interface StressOptions {
  procs?: number
  seconds?: number
  limit?: number
  keys?: number
  seed?: number
  fault?: string | null
  stopTimeoutMs?: number
  runDir?: string
  internal?: string
  weights?: Record<string, number>
  tickMs?: [number, number]
  waitChoices?: number[]
  trapStallMs?: number
  /** Every n-th worker (ids 1, 1+n, ...) records an identity only the kernel witness can vouch for. */
  hiddenEvery?: number
  log?: (message: string) => void
}
export const PACKAGE_ROOT: string
export const DEFAULT_INTERNAL: string
export const DEFAULT_WEIGHTS: Record<string, number>
export function reproduceCommand(o: Required<Pick<StressOptions, 'procs' | 'seconds' | 'limit' | 'keys' | 'seed'>> & { fault?: string | null }): string
export function runStress(options?: StressOptions): Promise<CheckResult & { runDir: string; command: string; seed: number }>
