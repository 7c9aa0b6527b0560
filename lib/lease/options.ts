import { LeaseError } from '../errors.js'
import type { LeaseStore } from './store.js'

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
   * Share of the limit this hold takes: a safe integer, 1 (default) to `limit`. The sum of live
   * weights never exceeds the limit, so `weight: limit` is an exclusive hold (a writer beside
   * readers of weight 1).
   */
  weight?: number
  /**
   * First come, first served across processes (default true): a waiter is granted only after
   * every earlier live waiter of the key, and `tryAcquireLease` only when nobody waits. false lets
   * this call take any slot that is free when it looks (more throughput, no order).
   */
  fair?: boolean
  /**
   * Opt into identity-only mode on filesystems whose kernel locks cannot be trusted (NFS, SMB,
   * FUSE). Crashed holders are then reclaimed on identity proof alone. Default false.
   */
  allowUnsafeFilesystem?: boolean
  /**
   * Where holds live when not in a local lock root: e.g. `postgresStore(...)` from
   * 'proclease/postgres' for holders on many hosts. Exclusive with `lockRoot` and
   * `allowUnsafeFilesystem`. Default: the file store under `lockRoot`.
   */
  store?: LeaseStore
}

export const MAX_KEY_LENGTH = 256
const MAX_METADATA_BYTES = 16 * 1024
// A lone surrogate has no UTF-8 form: two such keys would hash alike.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function invalid(message: string): LeaseError {
  return new LeaseError('invalid_argument', message)
}

/** Every option `acquireLease`, `tryAcquireLease` and `withLease` take. */
export const LEASE_OPTION_NAMES = ['key', 'limit', 'lockRoot', 'waitMs', 'signal', 'metadata', 'weight', 'fair', 'allowUnsafeFilesystem', 'store'] as const

// Names other libraries use for what these options do: a suggestion when no spelling is close.
const SYNONYMS: Readonly<Record<string, string>> = {
  timeout: 'waitMs',
  timeoutms: 'waitMs',
  wait: 'waitMs',
  deadline: 'waitMs',
  root: 'lockRoot',
  dir: 'lockRoot',
  lockdir: 'lockRoot',
  max: 'limit',
  concurrency: 'limit',
  slots: 'limit',
  permits: 'weight',
  count: 'weight',
  fifo: 'fair',
  ordered: 'fair',
  name: 'key',
  meta: 'metadata',
}

/** Edit distance counting a swap of neighbours as one edit ("kye"), capped just above `max`. */
function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)]
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const above = rows[i - 1] as number[]
      let v = Math.min((above[j] as number) + 1, (row[j - 1] as number) + 1, (above[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, ((rows[i - 2] as number[])[j - 2] as number) + 1)
      row.push(v)
    }
    rows.push(row)
  }
  return Math.min((rows[a.length] as number[])[b.length] as number, max + 1)
}

/** The known name `name` was most likely meant to be, if any is close enough to say so. */
function likelyMeant(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase()
  const exact = known.find((k) => k.toLowerCase() === lower)
  if (exact !== undefined) return exact
  const synonym = SYNONYMS[lower]
  if (synonym !== undefined && known.includes(synonym)) return synonym
  // Short names get less slack: one edit turns "key" into many unrelated words.
  const max = Math.min(2, Math.max(1, Math.floor(name.length / 3)))
  let best: string | undefined
  let bestDistance = max + 1
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase(), max)
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  return best
}

/**
 * Rejects option names outside `known`: a misspelled option would otherwise be ignored silently
 * (`{ waitMS: 0 }` waiting forever). `what` names the options in the message ("lease options").
 */
export function checkOptionNames(opts: object, known: readonly string[], what: string): void {
  for (const name of Object.keys(opts)) {
    if (known.includes(name)) continue
    const meant = likelyMeant(name, known)
    const hint = meant !== undefined ? ` (did you mean ${JSON.stringify(meant)}?)` : ''
    throw invalid(`${what}: unknown option ${JSON.stringify(name)}${hint}`)
  }
}

/** An optional boolean option: undefined is false; anything but a boolean is invalid. */
export function checkBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw invalid(`${name} must be a boolean, got ${value === null ? 'null' : typeof value}`)
  return value
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

/** Weight of a hold: 1 when unset, at most the limit. */
export function checkWeight(weight: unknown, limit: number): number {
  if (weight === undefined) return 1
  if (typeof weight !== 'number' || !Number.isSafeInteger(weight) || weight < 1) {
    throw invalid('weight must be a safe integer >= 1')
  }
  if (weight > limit) throw invalid(`weight ${weight} is above the limit ${limit}: such a hold could never be granted`)
  return weight
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
  // Plain objects only: a Date, Map or class instance has no own fields worth storing, and would
  // be stored as {} without a word.
  if (metadata === null || typeof metadata !== 'object') throw invalid('metadata must be a plain object')
  const proto: unknown = Object.getPrototypeOf(metadata)
  if (proto !== Object.prototype && proto !== null) throw invalid('metadata must be a plain object')
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
  // Duck-typed rather than instanceof, so a signal from another realm still works.
  const s = signal as Partial<AbortSignal> | null
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
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
  weight: number
  fair: boolean
  allowUnsafeFilesystem: boolean
  store: LeaseStore | undefined
}

const STORE_METHODS = ['claim', 'release', 'inspect', 'sweep', 'watch', 'close'] as const

/** A store given by the caller; exclusive with the file store's own options. */
export function checkStore(store: unknown, opts: { lockRoot?: unknown; allowUnsafeFilesystem?: unknown }): LeaseStore | undefined {
  if (store === undefined) return undefined
  if (store === null || typeof store !== 'object' || STORE_METHODS.some((m) => typeof (store as Record<string, unknown>)[m] !== 'function')) {
    throw invalid('store must be a lease store (e.g. postgresStore(...) from proclease/postgres)')
  }
  if (opts.lockRoot !== undefined) throw invalid('store and lockRoot are exclusive: a lock root belongs to the file store')
  if (opts.allowUnsafeFilesystem !== undefined) throw invalid('store and allowUnsafeFilesystem are exclusive: that option belongs to the file store')
  return store as LeaseStore
}

export function normalizeOptions(opts: LeaseOptions): NormalizedOptions {
  if (opts === null || typeof opts !== 'object') throw invalid('options must be an object')
  checkOptionNames(opts, LEASE_OPTION_NAMES, 'lease options')
  const limit = checkLimit(opts.limit)
  return {
    key: checkKey(opts.key),
    limit,
    weight: checkWeight(opts.weight, limit),
    fair: opts.fair === undefined ? true : checkBoolean(opts.fair, 'fair'),
    lockRoot: checkLockRoot(opts.lockRoot),
    waitMs: checkWaitMs(opts.waitMs),
    signal: checkSignal(opts.signal),
    metadata: checkMetadata(opts.metadata),
    allowUnsafeFilesystem: checkBoolean(opts.allowUnsafeFilesystem, 'allowUnsafeFilesystem'),
    store: checkStore(opts.store, opts),
  }
}

/** Checks `{ waitMs, signal }` of release, inspection and sweeps; undefined values are unset. */
export function checkWaitOptions(opts: unknown, what: string): { waitMs: number | undefined; signal: AbortSignal | undefined } {
  if (opts === undefined) return { waitMs: undefined, signal: undefined }
  if (opts === null || typeof opts !== 'object') throw invalid(`${what} options must be an object`)
  checkOptionNames(opts, ['waitMs', 'signal'], what)
  const o = opts as { waitMs?: unknown; signal?: unknown }
  const waitMs = o.waitMs === undefined ? undefined : checkWaitMs(o.waitMs)
  return { waitMs, signal: checkSignal(o.signal) }
}

export function checkReleaseOptions(opts: unknown): { waitMs: number | undefined; signal: AbortSignal | undefined } {
  return checkWaitOptions(opts, 'release')
}
