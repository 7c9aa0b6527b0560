// Types for driver.mjs (the harness is plain JavaScript so it runs without a build step).
import type { CheckResult, StressRun } from './check.mjs'
export interface StressOptions {
  /** 'postgres': workers on a PostgreSQL store, on a cluster the driver starts (default 'file'). */
  store?: 'file' | 'postgres'
  /** The PostgreSQL store's TTL (default 2000). */
  ttlMs?: number
  /** Least time between two server restarts (default 4000). */
  restartGapMs?: number
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
  /** A run goes on past `seconds`, up to `maxSeconds`, until it did this much (summary.work says whether it did). */
  minWork?: { grants?: number; kills?: number; limitChanges?: number; restarts?: number } | null
  maxSeconds?: number | null
  /** Keeps a rally open (a forced interleaving: `size` holders at once; see worker.mjs). */
  rally?: { at: 'afterScan' | 'holding'; size: number; opener?: 'hidden'; memberWeight?: number; weightSum?: number } | null
  rallyWaitMs?: number
  /** Share of acquires made with fair: true (default 0.8; 0 on PostgreSQL, which has no queue yet). */
  fairShare?: number
  /** Cap on the weights workers ask for (1..limit, mostly 1; default none; 1 on PostgreSQL). */
  maxWeight?: number | null
  /** The checker (defaults to checkRun). */
  check?: (run: StressRun) => CheckResult
  log?: (message: string) => void
}
export const PACKAGE_ROOT: string
export const DEFAULT_INTERNAL: string
export const DEFAULT_WEIGHTS: Record<string, number>
export const DEFAULT_FAIR_SHARE: number
export const PG_WEIGHTS: Record<string, number>
export const STORES: string[]
export function reproduceCommand(
  o: Required<Pick<StressOptions, 'procs' | 'seconds' | 'limit' | 'keys' | 'seed'>> & Pick<StressOptions, 'fault' | 'minWork' | 'maxSeconds'>,
): string
export function runStress(options?: StressOptions): Promise<CheckResult & { runDir: string; command: string; seed: number }>
