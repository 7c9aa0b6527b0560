import { resolve } from 'node:path'
import { LeaseError, suppressedError } from '../errors.js'
import { type AcquireHooks, type Lease, acquireWith } from './engine.js'
import { FileStore } from './file/index.js'
import { type LeaseOptions, type NormalizedOptions, checkBoolean, checkKey, checkLockRoot, checkOptionNames, checkStore, checkWaitOptions, normalizeOptions } from './options.js'
import { defaultLockRoot } from './root.js'
import { GATE_WAIT_MS, type GateWait, type KeyStatus, type LeaseStore, type PruneReport, type SweepReport } from './store.js'

const stores = new Map<string, FileStore>()

/** One store per lock root and mode, so the root is vetted once per process, not per call. */
export function storeFor(lockRoot: string | undefined, allowUnsafeFilesystem = false): FileStore {
  const root = resolve(lockRoot ?? defaultLockRoot())
  const id = `${allowUnsafeFilesystem ? 'unsafe' : 'safe'}:${root}`
  let store = stores.get(id)
  if (!store) {
    store = new FileStore({ root, allowUnsafeFilesystem })
    stores.set(id, store)
  }
  return store
}

/** The store a call's options name: the caller's own, or the file store of a lock root. */
function storeOf(o: Pick<NormalizedOptions, 'store' | 'lockRoot' | 'allowUnsafeFilesystem'>): LeaseStore {
  return o.store ?? storeFor(o.lockRoot, o.allowUnsafeFilesystem)
}

/** Waits up to `waitMs` (default: until a slot frees or `signal` aborts) for a slot of `key`. */
export async function acquireLease(opts: LeaseOptions): Promise<Lease> {
  return acquireLeaseWith(opts)
}

/** acquireLease with engine hooks (progress callback, holder identity) for the CLI. */
export async function acquireLeaseWith(opts: LeaseOptions, hooks?: AcquireHooks): Promise<Lease> {
  const o = normalizeOptions(opts)
  const lease = await acquireWith(storeOf(o), o, 'wait', hooks)
  if (lease === null) throw new LeaseError('lease_busy', 'no slot free', { capacity: { active: o.limit, limit: o.limit } })
  return lease
}

/** Takes a free slot now, or resolves null when all are held. Never waits for a slot. */
export async function tryAcquireLease(opts: LeaseOptions): Promise<Lease | null> {
  const o = normalizeOptions(opts)
  return acquireWith(storeOf(o), o, 'try')
}

/**
 * Runs fn while holding a slot; releases it however fn ends. When fn throws and the release
 * fails too, rejects with a SuppressedError (as `await using` does): `suppressed` is fn's error,
 * `error` the release failure. A plain `finally` would replace fn's error with the release's.
 */
export async function withLease<T>(opts: LeaseOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T> {
  const lease = await acquireLease(opts)
  let result: T
  try {
    result = await fn(lease)
  } catch (jobError) {
    try {
      await lease.release()
    } catch (releaseError) {
      const message = `the job failed (${messageOf(jobError)}) and releasing its lease failed too (${messageOf(releaseError)})`
      throw suppressedError(releaseError, jobError, message)
    }
    throw jobError
  }
  await lease.release()
  return result
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export interface InspectOptions {
  key: string
  lockRoot?: string
  /** Include holder identity (pid, argv0, host, times, metadata). Default: counts and states only. */
  verbose?: boolean
  /** As in LeaseOptions: inspect a root kept on a filesystem without trusted kernel locks. */
  allowUnsafeFilesystem?: boolean
  /**
   * How long to wait behind the key's gate while another process holds it (default 10 000 ms);
   * a gate held longer (a process stopped mid-transition) fails with `key_frozen`.
   */
  waitMs?: number
  /** Aborts that wait with `aborted`. */
  signal?: AbortSignal
  /** Inspect this store instead of a lock root (exclusive with lockRoot). */
  store?: LeaseStore
}

function gateWait(opts: { waitMs?: unknown; signal?: unknown }, what: string): GateWait {
  const { waitMs, signal } = checkWaitOptions({ waitMs: opts.waitMs, signal: opts.signal }, what)
  return { waitMs: waitMs ?? GATE_WAIT_MS, signal }
}

// The options object of acquireLease can be passed as it is: its other options are accepted and unused.
const INSPECT_OPTION_NAMES = ['key', 'lockRoot', 'verbose', 'allowUnsafeFilesystem', 'waitMs', 'signal', 'store', 'limit', 'metadata', 'weight', 'fair'] as const
const RECLAIM_OPTION_NAMES = [...INSPECT_OPTION_NAMES, 'dryRun'] as const

/** Checked inspect/reclaim options: the store, the key, the gate wait and the flags. */
function inspectTarget(opts: unknown, known: readonly string[], what: string) {
  if (opts === null || typeof opts !== 'object') throw new LeaseError('invalid_argument', `${what}: options must be an object`)
  checkOptionNames(opts, known, what)
  const o = opts as ReclaimOptions
  const key = checkKey(o.key)
  const verbose = checkBoolean(o.verbose, 'verbose')
  const dryRun = checkBoolean(o.dryRun, 'dryRun')
  const allowUnsafeFilesystem = checkBoolean(o.allowUnsafeFilesystem, 'allowUnsafeFilesystem')
  const store = storeOf({ store: checkStore(o.store, o), lockRoot: checkLockRoot(o.lockRoot), allowUnsafeFilesystem })
  return { store, key, verbose, dryRun, wait: gateWait(o, what) }
}

/** Counts and per-slot states of a key. Judges holders but changes nothing, and creates nothing. */
export async function inspectLeases(opts: InspectOptions): Promise<KeyStatus> {
  const t = inspectTarget(opts, INSPECT_OPTION_NAMES, 'inspectLeases')
  return t.store.inspect(t.key, t.verbose, t.wait)
}

export interface ReclaimOptions extends InspectOptions {
  /** Report what would be reclaimed without removing anything. */
  dryRun?: boolean
}

/** Removes the records of holders proven gone (the engine also does this on every claim). */
export async function reclaimLeases(opts: ReclaimOptions): Promise<SweepReport> {
  const t = inspectTarget(opts, RECLAIM_OPTION_NAMES, 'reclaimLeases')
  return t.store.sweep(t.key, t.dryRun, t.verbose, t.wait)
}

/** Keys that have ever been used under a lock root (a missing root has none; nothing is created). */
export function listLeaseKeys(opts?: { lockRoot?: string }): string[]
/** Keys that have held slots in a store. */
export function listLeaseKeys(opts: { store: LeaseStore }): Promise<string[]>
export function listLeaseKeys(opts: { lockRoot?: string; store?: LeaseStore } = {}): string[] | Promise<string[]> {
  if (opts === null || typeof opts !== 'object') throw new LeaseError('invalid_argument', 'listLeaseKeys: options must be an object')
  checkOptionNames(opts, ['lockRoot', 'store'], 'listLeaseKeys')
  const store = checkStore(opts.store, opts)
  if (store === undefined) return storeFor(checkLockRoot(opts.lockRoot)).listKeysSync()
  if (typeof store.listKeys !== 'function') throw new LeaseError('invalid_argument', 'this store cannot list its keys')
  return store.listKeys()
}

export interface PruneOptions {
  /** Remove keys idle (no grant, release or wait) for at least this long: a number >= 0. */
  idleMs: number
  lockRoot?: string
  /** Prune this store instead of a lock root (exclusive with lockRoot). */
  store?: LeaseStore
  /** Report what would be removed without removing anything. */
  dryRun?: boolean
  allowUnsafeFilesystem?: boolean
}

/**
 * Removes keys that have no holder and no waiter and have been idle for `idleMs`: per-entity keys
 * (one per session id) otherwise stay forever. Safe against a concurrent claim of the same key,
 * and a pruned key's fences never go back when it is used again.
 */
export async function pruneLeaseKeys(opts: PruneOptions): Promise<PruneReport> {
  if (opts === null || typeof opts !== 'object') throw new LeaseError('invalid_argument', 'pruneLeaseKeys: options must be an object')
  checkOptionNames(opts, ['idleMs', 'lockRoot', 'store', 'dryRun', 'allowUnsafeFilesystem'], 'pruneLeaseKeys')
  const { idleMs } = opts
  if (typeof idleMs !== 'number' || Number.isNaN(idleMs) || idleMs < 0) {
    throw new LeaseError('invalid_argument', 'pruneLeaseKeys: idleMs must be a number >= 0 (milliseconds)')
  }
  const dryRun = checkBoolean(opts.dryRun, 'dryRun')
  const allowUnsafeFilesystem = checkBoolean(opts.allowUnsafeFilesystem, 'allowUnsafeFilesystem')
  const store = storeOf({ store: checkStore(opts.store, opts), lockRoot: checkLockRoot(opts.lockRoot), allowUnsafeFilesystem })
  if (typeof store.prune !== 'function') throw new LeaseError('store_unsupported', 'this store cannot prune its keys')
  return store.prune(idleMs, dryRun)
}
