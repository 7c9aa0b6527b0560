import { writeSync } from 'node:fs'
import type { HolderRecord } from '../classify.js'
import { LeaseError } from '../errors.js'
import { capturePidInfo, hostIdentity } from '../probes.js'
import { type NormalizedOptions, checkReleaseOptions } from './options.js'
import { GATE_WAIT_MS, type Hold, type KeyWatch, type LeaseStore, type RecoveredHolder } from './store.js'

/** How long `release()` may wait behind the key's gate held by another process. */
export interface ReleaseOptions {
  /** Default 10 000 ms; then `key_frozen`, and the hold stays for a later release. */
  waitMs?: number
  /** Aborts the wait with `aborted`; the hold stays. */
  signal?: AbortSignal
}

/** A held slot. Release it exactly once; later calls return false. */
export interface Lease {
  readonly key: string
  readonly slot: number
  readonly token: string
  /** Strictly increasing per key across all grants: pass it to the resource you protect. */
  readonly fence: number
  /** Share of the limit this hold takes (the `weight` option; 1 by default). */
  readonly weight: number
  /**
   * The crashed holder whose removal this grant follows — pid, host, acquiredAt, fence, metadata
   * — or null. Exactly one later holder learns of each crashed one: the place to clean up after it.
   */
  readonly recovered: RecoveredHolder | null
  /**
   * Aborts when the store learns the hold may be lost before you released it (reason `expired`,
   * `connection_lost` or `lost`): stop using the resource. Never aborts on your own release.
   */
  readonly signal: AbortSignal
  /**
   * Whether the hold is still yours, checked now: false once released, lost, or past a networked
   * store's local deadline. Check it right before acting on the protected resource.
   */
  held(): boolean
  release(opts?: ReleaseOptions): Promise<boolean>
  /** Synchronous release, where the store has one (the file store does); throws otherwise. */
  releaseSync(): boolean
  [Symbol.asyncDispose](): Promise<void>
}

// Pacing of the wait loop. A release wakes waiters through the directory watch; the backoff only
// covers what no file event announces (a holder that died) and so bounds recovery time.
const BUSY_FIRST_MS = 5
const BUSY_MAX_MS = 100
/** Ceiling when every holder's exit is watched: then only rare, silent changes need the poll. */
const BUSY_WATCHED_MAX_MS = 1000
/**
 * A queued waiter whose watch is covered and targeted is told of its turn alone; its poll is a
 * safety net (a hold ended without any file or process event, e.g. a terminated worker thread).
 */
const BUSY_TARGETED_FIRST_MS = 250
const BUSY_TARGETED_MAX_MS = 5000
const CONTENDED_MAX_MS = 20
const VANISHED_FIRST_MS = 20
const VANISHED_MAX_MS = 500
/** Extra time allowed to get through a gate another process holds for a moment. */
const GATE_GRACE_MS = 100

const held = new Set<LeaseHandle>()
let exitHookInstalled = false

function releaseAllOnExit(): void {
  for (const lease of [...held]) {
    // Stores without a synchronous release end their holds otherwise (a closed socket frees a
    // session witness).
    if (!lease.canReleaseSync) continue
    try {
      lease.releaseSync()
    } catch (err) {
      // The kernel drops our locks as we exit, so the slot is still reclaimable; say why it was left.
      const msg = err instanceof Error ? err.message : String(err)
      writeSync(2, `proclease: could not release lease on exit: ${msg}\n`)
    }
  }
}

function track(lease: LeaseHandle): void {
  held.add(lease)
  if (!exitHookInstalled) {
    process.on('exit', releaseAllOnExit)
    exitHookInstalled = true
  }
}

function untrack(lease: LeaseHandle): void {
  held.delete(lease)
  if (held.size === 0 && exitHookInstalled) {
    process.removeListener('exit', releaseAllOnExit)
    exitHookInstalled = false
  }
}

const internals = new WeakMap<Lease, { store: LeaseStore; hold: Hold }>()

/** The store and hold behind a lease, for the CLI's hand-over to its command. */
export function leaseInternals(lease: Lease): { store: LeaseStore; hold: Hold } | undefined {
  return internals.get(lease)
}

class LeaseHandle implements Lease {
  readonly key: string
  readonly slot: number
  readonly token: string
  readonly fence: number
  readonly weight: number
  readonly recovered: RecoveredHolder | null
  readonly signal: AbortSignal
  #store: LeaseStore
  #hold: Hold
  #done = false
  #pending: Promise<boolean> | null = null

  constructor(store: LeaseStore, hold: Hold) {
    this.key = hold.key
    this.slot = hold.slot
    this.token = hold.token
    this.fence = hold.fence
    this.weight = hold.weight
    this.recovered = hold.recovered
    this.signal = hold.signal
    this.#store = store
    this.#hold = hold
    internals.set(this, { store, hold })
    track(this)
  }

  // Done only once the store has answered: after an I/O error the hold is intact, still tracked
  // for release at exit, and release can be called again.
  async release(opts?: ReleaseOptions): Promise<boolean> {
    const wait = checkReleaseOptions(opts)
    if (this.#done) return false
    if (this.#pending) return this.#pending.then(() => false)
    this.#pending = this.#store.release(this.#hold, { waitMs: wait.waitMs ?? GATE_WAIT_MS, signal: wait.signal }).then(
      (ok) => {
        this.#finish()
        return ok
      },
      (err: unknown) => {
        this.#pending = null
        throw err
      },
    )
    return this.#pending
  }

  held(): boolean {
    return !this.#done && this.#hold.held()
  }

  get canReleaseSync(): boolean {
    return typeof this.#store.releaseSync === 'function'
  }

  releaseSync(): boolean {
    if (this.#done || this.#pending) return false
    if (typeof this.#store.releaseSync !== 'function') {
      throw new LeaseError('invalid_argument', 'this store has no synchronous release: use release()')
    }
    const ok = this.#store.releaseSync(this.#hold)
    this.#finish()
    return ok
  }

  #finish(): void {
    this.#done = true
    untrack(this)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release()
  }

  toJSON(): { key: string; slot: number; fence: number; weight: number } {
    return { key: this.key, slot: this.slot, fence: this.fence, weight: this.weight }
  }
}

let selfCache: HolderRecord | null = null

/**
 * This process as a holder record. Read once: pid and start time never change for a process,
 * and argv0 is advisory. Identity that cannot be read is left unverifiable, not faked.
 */
export function selfHolder(): HolderRecord {
  if (selfCache !== null && selfCache.pid === process.pid) return selfCache
  const host = hostIdentity()
  try {
    const me = capturePidInfo(process.pid)
    selfCache = { pid: process.pid, starttime: me.starttime, argv0: me.argv0, ...host }
    return selfCache
  } catch {
    // Others will judge this hold unverifiable by identity; the kernel witness still speaks.
    return { pid: process.pid, starttime: '', argv0: null, ...host }
  }
}

function abortError(signal: AbortSignal): LeaseError {
  return new LeaseError('aborted', 'acquire aborted', { cause: signal.reason })
}

function busyError(active: number, used: number, limit: number): LeaseError {
  const held = used === active ? `${active}/${limit} held` : `${used}/${limit} held by ${active} holder${active === 1 ? '' : 's'}`
  return new LeaseError('lease_busy', `no slot freed in time (${held})`, {
    capacity: { active, used, limit },
  })
}

/** Resolves after ms, or early when woken; rejects when the signal fires. Leaves nothing behind. */
function pause(ms: number, signal: AbortSignal | undefined, setWake: (fn: (() => void) | null) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      setWake(null)
    }
    const timer = setTimeout(() => {
      done()
      resolve()
    }, Math.max(0, ms))
    const onAbort = (): void => {
      done()
      reject(abortError(signal as AbortSignal))
    }
    setWake(() => {
      done()
      resolve()
    })
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

const jitter = (ms: number): number => ms * (0.5 + Math.random())

export interface AcquireHooks {
  /** Called with the holder count and their weights' sum each time the key is found full (the CLI's progress line). */
  onBusy?: (active: number, limit: number, used: number) => void
  /** The identity to record; defaults to this process. */
  holder?: () => HolderRecord
  /** Each pause of the wait loop and why (a test seam for the pacing rules). */
  onPause?: (ms: number, why: 'busy' | 'contended' | 'retry', watched: boolean) => void
}

/**
 * The wait loop over a store: deadline, backoff, watch, abort. `try` mode never waits for a
 * slot; it only rides out a gate another process holds for a moment.
 */
export async function acquireWith(
  store: LeaseStore,
  opts: NormalizedOptions,
  mode: 'wait' | 'try',
  hooks: AcquireHooks = {},
): Promise<Lease | null> {
  const { key, limit, weight, fair, signal } = opts
  if (signal?.aborted) throw abortError(signal)
  const start = performance.now()
  const deadline = mode === 'try' ? start : start + opts.waitMs
  const holder = hooks.holder ?? selfHolder
  let busyPause = BUSY_FIRST_MS
  let contendedPause = 1
  let vanishedPause = VANISHED_FIRST_MS
  let last: { active: number; used: number } | null = null
  let wake: (() => void) | null = null
  let watch: KeyWatch | null = null
  // Our place in the key's queue, from the first busy answer on; given up if we leave unserved.
  let place: unknown = null
  const tooLate = (): LeaseError => busyError(last?.active ?? limit, last?.used ?? limit, limit)

  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal)
      let watched = false
      const attempt = await store.claim({ key, limit, weight, metadata: opts.metadata, holder: holder(), fair, mode, place })
      const now = performance.now()
      let waitMs: number
      switch (attempt.kind) {
        case 'granted':
          place = null
          return new LeaseHandle(store, attempt.hold)
        case 'unavailable':
          // An outage is never "busy": say so at once, with the store's own error as the cause.
          throw new LeaseError('store_unavailable', `the lease store is unavailable (${attempt.reason})`, { cause: attempt.cause })
        case 'busy': {
          last = { active: attempt.active, used: attempt.used }
          if (attempt.place !== undefined && attempt.place !== place) {
            // A new place (the old one was lost with a replaced directory): the watch follows it.
            place = attempt.place
            watch?.close()
            watch = null
          }
          if (mode === 'try') return null
          if (now >= deadline) throw busyError(attempt.active, attempt.used, attempt.limit)
          hooks.onBusy?.(attempt.active, attempt.limit, attempt.used)
          if (watch !== null && watch.alive) watch.update(attempt.wake)
          // (Re-)arm the watch: none yet, or it ended (its directory was replaced, its connection closed).
          if (watch === null || !watch.alive) {
            watch?.close()
            watch = await store.watch(key, attempt.wake, () => wake?.(), place ?? undefined)
            // A release may have landed before the watch began: look once more right away.
            if (watch !== null) continue
          }
          // Long pauses only while every change that could free a slot is announced. Without a
          // watch, a release is noticed only by looking again.
          watched = watch !== null && watch.alive && watch.covered
          const targeted = watched && watch?.targeted === true
          if (targeted) busyPause = Math.max(busyPause, BUSY_TARGETED_FIRST_MS)
          waitMs = jitter(busyPause)
          busyPause = Math.min(busyPause * 2, targeted ? BUSY_TARGETED_MAX_MS : watched ? BUSY_WATCHED_MAX_MS : BUSY_MAX_MS)
          if (attempt.wake.recheckInMs !== null) waitMs = Math.min(waitMs, Math.max(attempt.wake.recheckInMs, 0))
          break
        }
        case 'contended':
          if (now >= deadline + GATE_GRACE_MS) {
            if (mode === 'try') return null
            throw tooLate()
          }
          waitMs = jitter(contendedPause)
          contendedPause = Math.min(contendedPause * 2, CONTENDED_MAX_MS)
          break
        case 'retry':
          if (now >= deadline + GATE_GRACE_MS) {
            if (mode === 'try') return null
            throw tooLate()
          }
          // The lock root vanished (a cleaner): re-created on the next attempt, paced, never hot.
          // The old directory's watch died with it; a new one starts on the next busy answer.
          watch?.close()
          watch = null
          waitMs = jitter(vanishedPause)
          vanishedPause = Math.min(vanishedPause * 2, VANISHED_MAX_MS)
          break
      }
      const limitMs = attempt.kind === 'busy' ? deadline - now : deadline + GATE_GRACE_MS - now
      hooks.onPause?.(waitMs, attempt.kind, watched)
      await pause(Math.min(waitMs, Math.max(limitMs, 0)), signal, (fn) => {
        wake = fn
      })
    }
  } finally {
    watch?.close()
    // Unserved (deadline, abort, an error): those behind us must not wait for our turn.
    if (place !== null && typeof store.leave === 'function') await store.leave(key, place)
  }
}
