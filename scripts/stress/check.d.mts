// Types for check.mjs (the harness is plain JavaScript so it runs without a build step).
export interface StressRun {
  meta: { seed: number; procs: number; seconds: number; keys: string[]; limit: number; fault?: string | null; stopTimeoutMs: number; startT?: number; [k: string]: unknown }
  driver: Array<Record<string, unknown>>
  workers: Map<number, Array<Record<string, unknown>>>
  leftovers: { before: Array<Record<string, unknown>>; after: Array<Record<string, unknown>>; sweepError?: string | null } | null
  badLines: number
}
export interface Violation {
  kind: string
  [k: string]: unknown
}
export interface CheckResult {
  ok: boolean
  violations: Violation[]
  // The summary's shape is documented in check.mjs; tests read a few fields.
  summary: Record<string, any> & { violationCounts: Record<string, number> }
}
export function loadRun(runDir: string): StressRun
export function checkRun(run: StressRun, opts?: { maxPerKind?: number }): CheckResult
