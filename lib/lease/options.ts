import { LeaseError } from '../errors.js'

export type Metadata = Record<string, string | number | boolean>

export interface LeaseOptions {
  /** Any non-empty string up to 256 characters; distinct keys never share slots. */
  key: string
  /** Most holders at once: a safe integer >= 1. */
  limit: number
  /** Directory holding the lock files; defaults to a per-user private directory. */
  lockRoot?: string
  /** How long to wait for a free slot. Default: until one frees or the signal aborts. */
  waitMs?: number
  /** Aborts waiting with code `aborted`. */
  signal?: AbortSignal
  /** Stored with the hold; shown only by verbose inspection. */
  metadata?: Metadata
  /**
   * Opt into identity-only mode on filesystems whose kernel locks cannot be trusted (NFS, SMB,
   * FUSE). Crashed holders are then reclaimed on identity proof alone. Default false.
   */
  allowUnsafeFilesystem?: boolean
}

export const MAX_KEY_LENGTH = 256
const MAX_METADATA_BYTES = 16 * 1024
// A lone surrogate has no UTF-8 form: two such keys would hash alike.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function invalid(message: string): LeaseError {
  return new LeaseError('invalid_argument', message)
}

export function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw invalid('key must be a non-empty string')
  if (key.length > MAX_KEY_LENGTH) throw invalid(`key must be at most ${MAX_KEY_LENGTH} characters`)
  if (LONE_SURROGATE.test(key)) throw invalid('key must be well-formed Unicode')
  return key
}

export function checkLimit(limit: unknown): number {
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) {
    throw invalid('limit must be a safe integer >= 1')
  }
  return limit
}

/** Milliseconds to wait; Infinity when unset. */
export function checkWaitMs(waitMs: unknown): number {
  if (waitMs === undefined) return Infinity
  if (typeof waitMs !== 'number' || Number.isNaN(waitMs) || waitMs < 0) {
    throw invalid('waitMs must be a number >= 0 (or Infinity)')
  }
  return waitMs
}

export function checkMetadata(metadata: unknown): Metadata {
  if (metadata === undefined) return {}
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw invalid('metadata must be a plain object')
  }
  const out: Metadata = {}
  for (const [k, v] of Object.entries(metadata)) {
    const ok = typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
    if (!ok) throw invalid(`metadata.${k} must be a string, a finite number or a boolean`)
    out[k] = v
  }
  if (Buffer.byteLength(JSON.stringify(out)) > MAX_METADATA_BYTES) {
    throw invalid(`metadata must serialize to at most ${MAX_METADATA_BYTES} bytes`)
  }
  return out
}

export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined
  if (signal === null || typeof signal !== 'object' || typeof (signal as AbortSignal).aborted !== 'boolean') {
    throw invalid('signal must be an AbortSignal')
  }
  return signal as AbortSignal
}

export function checkLockRoot(root: unknown): string | undefined {
  if (root === undefined) return undefined
  if (typeof root !== 'string' || root.length === 0 || root.includes('\0')) {
    throw invalid('lockRoot must be a non-empty path')
  }
  return root
}

export interface NormalizedOptions {
  key: string
  limit: number
  lockRoot: string | undefined
  waitMs: number
  signal: AbortSignal | undefined
  metadata: Metadata
  allowUnsafeFilesystem: boolean
}

export function normalizeOptions(opts: LeaseOptions): NormalizedOptions {
  if (opts === null || typeof opts !== 'object') throw invalid('options must be an object')
  return {
    key: checkKey(opts.key),
    limit: checkLimit(opts.limit),
    lockRoot: checkLockRoot(opts.lockRoot),
    waitMs: checkWaitMs(opts.waitMs),
    signal: checkSignal(opts.signal),
    metadata: checkMetadata(opts.metadata),
    allowUnsafeFilesystem: opts.allowUnsafeFilesystem === true,
  }
}

/** Checks `{ waitMs, signal }` of release, inspection and sweeps; undefined values are unset. */
export function checkWaitOptions(opts: unknown, what: string): { waitMs: number | undefined; signal: AbortSignal | undefined } {
  if (opts === undefined) return { waitMs: undefined, signal: undefined }
  if (opts === null || typeof opts !== 'object') throw invalid(`${what} options must be an object`)
  const o = opts as { waitMs?: unknown; signal?: unknown }
  const waitMs = o.waitMs === undefined ? undefined : checkWaitMs(o.waitMs)
  return { waitMs, signal: checkSignal(o.signal) }
}

export function checkReleaseOptions(opts: unknown): { waitMs: number | undefined; signal: AbortSignal | undefined } {
  return checkWaitOptions(opts, 'release')
}
