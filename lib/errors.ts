/** Codes a probe can fail with. Only `process_gone` is proof of absence. */
export type ProbeErrorCode = 'invalid_pid' | 'process_gone' | 'capture_error'

/** Raised by the process-identity probes. `code` is stable; `reason` is a short machine-readable detail. */
export class ProbeError extends Error {
  readonly code: ProbeErrorCode
  readonly reason: string
  readonly pid: number | undefined

  constructor(code: ProbeErrorCode, reason: string, message: string, pid?: number) {
    super(message)
    this.name = 'ProbeError'
    this.code = code
    this.reason = reason
    this.pid = pid
  }
}

export type LeaseErrorCode =
  | 'lease_busy'
  | 'invalid_argument'
  | 'lock_root_unsafe'
  | 'lock_root_unwritable'
  | 'locks_unsupported'
  | 'aborted'
  /** Another process has held the key's gate past the wait's bound (stopped mid-transition?). */
  | 'key_frozen'
  /** The key's fence counter cannot grow without passing 2^53 - 1; fences never repeat. */
  | 'fence_exhausted'
  /** The store cannot be reached (a server outage); never reported as lease_busy. */
  | 'store_unavailable'
  /** The store was closed; open a new one. */
  | 'store_closed'
  /** The store refuses this setup: a transaction-mode pooler, an isolation level other than READ COMMITTED, `pg` not installed. */
  | 'store_unsupported'

export interface Capacity {
  active: number
  used: number
  limit: number
}

/** Raised by the lease API. `capacity` is set only for `lease_busy` and is counts only. */
export class LeaseError extends Error {
  readonly code: LeaseErrorCode
  /** `active` holders, the sum of their weights (`used`) and the limit that sum is held to. */
  declare readonly capacity?: Capacity

  constructor(code: LeaseErrorCode, message: string, extra?: { capacity?: { active: number; used?: number; limit: number }; cause?: unknown }) {
    super(message, extra?.cause !== undefined ? { cause: extra.cause } : undefined)
    this.name = code === 'aborted' ? 'AbortError' : 'LeaseError'
    this.code = code
    if (extra?.capacity) this.capacity = { active: extra.capacity.active, used: extra.capacity.used ?? extra.capacity.active, limit: extra.capacity.limit }
  }
}

/** What `await using` throws when disposal fails after the block threw; see suppressedError(). */
export interface SuppressedErrorLike extends Error {
  /** The later failure (the release). */
  readonly error: unknown
  /** The earlier failure (the job's own error), which is kept, not lost. */
  readonly suppressed: unknown
}

// Node 20 has no global SuppressedError; this one has the same shape and name.
class SuppressedErrorCompat extends Error implements SuppressedErrorLike {
  readonly error: unknown
  readonly suppressed: unknown

  constructor(error: unknown, suppressed: unknown, message: string) {
    super(message)
    this.name = 'SuppressedError'
    this.error = error
    this.suppressed = suppressed
  }
}

/** A SuppressedError as `await using` builds it: the global class where there is one. */
export function suppressedError(error: unknown, suppressed: unknown, message: string): SuppressedErrorLike {
  const Native = (globalThis as { SuppressedError?: SuppressedErrorConstructor }).SuppressedError
  if (typeof Native === 'function') return new Native(error, suppressed, message) as SuppressedErrorLike
  return new SuppressedErrorCompat(error, suppressed, message)
}
