// The contract between the lease engine and a store. The engine (engine.ts) owns waiting,
// deadlines, aborts and the Lease object; a store owns serialization, judgement and its own
// resources. Inputs arrive normalized (options.ts). Every store keeps these invariants:
//
// S1 Bound. Once a claim resolves `granted`, the key has at most `limit` holds not proven gone;
//    holds above a lowered limit and entries the store cannot read count as occupied.
// S2 Proof-only reclaim. A hold goes only when no witness says its holder may be alive and one
//    proves it gone. An outage, a timeout or an unreadable record is never proof.
// S3 One transition per key at a time. Judge, reclaim, count and publish are serialized per key;
//    nobody sees a half-written hold; a claim that fails part-way leaves none.
// S4 Fences exceed every fence ever granted for the key, across crashes, wiped roots and server
//    restarts, and stay exact JS numbers (<= 2^53 - 1; beyond that, `fence_exhausted`).
// S5 Token-checked release. `release` removes a hold only while it is still its own, returns true
//    at most once per hold, and never removes another's.
// S6 Answers, not exceptions. busy, contended, retry and unavailable are returned; only misuse and
//    unexpected faults throw. An outage is never `busy`. A busy answer carries counts only (its
//    wake hint is for the store's own watch, never shown to users).
// S7 Lost holds are announced. Where a hold can end without its holder (TTL, dropped session,
//    wiped root), `hold.signal` aborts with reason `expired` | `connection_lost` | `lost`.
// S8 Honest inspection. `inspect` changes nothing (and creates nothing); `sweep` removes only what
//    `claim` would; both count alike.
// S9 Watching is a hint: it may fire spuriously or never; the engine keeps polling, briskly
//    unless the watch says every change that could free a slot is announced (`covered`).
// S10 Lifecycle. `close()` is idempotent and waits for calls in flight; later calls reject with
//    `store_closed`. No store keeps the process alive by itself or emits an unhandled `error`.
// S11 Order. A `fair` waiting claim takes a place in the key's queue on its first busy answer
//    and keeps it across attempts; it is granted only when no earlier live place remains and its
//    weight fits. A claim without a place (`try`, or a first attempt) is granted only when no live
//    place exists at all; `fair: false` ignores the queue. A place whose waiter is proven gone
//    (same two witnesses as a hold) stops counting at once; `leave` ends one.
// S12 Takeover notice. Each hold proven gone and removed leaves one notice (its record); the next
//    grant of the key takes it as `hold.recovered`, so exactly one later holder learns of it.
import type { HolderRecord } from '../classify.js'
import type { Metadata } from './options.js'
import type { SlotState } from './witness.js'

/** Why a hold ended without its holder releasing it (the `reason` of `hold.signal`). */
export type LostReason = 'expired' | 'connection_lost' | 'lost'

/** A granted slot as the engine sees it; stores keep their private state behind `handle`. */
export interface Hold {
  key: string
  slot: number
  token: string
  fence: number
  /** Aborts (reason: a LostReason) when the store learns the hold may be lost. */
  readonly signal: AbortSignal
  /**
   * A synchronous check, right now: false once the hold is released, lost, or past its local
   * deadline, even when the event that would abort `signal` has not been processed yet (a
   * process resumed after SIGSTOP runs its I/O callbacks before its timers).
   */
  held(): boolean
  /** Share of the limit this hold takes (default 1). */
  weight: number
  /** The crashed holder whose removal this grant follows, or null (S12). */
  recovered: RecoveredHolder | null
  readonly handle: unknown
}

/** What a later holder learns of a crashed one (S12): its record, minus token and kernel details. */
export interface RecoveredHolder {
  slot: number
  pid: number
  hostname: string
  argv0: string | null
  acquiredAt: string
  fence: number
  weight: number
  metadata: Metadata
}

export interface ClaimRequest {
  key: string
  limit: number
  /** 1 <= weight <= limit: the sum of live weights never exceeds the limit. */
  weight: number
  metadata: Metadata
  holder: HolderRecord
  /** Keep to the key's queue (S11). */
  fair: boolean
  /** `try` never takes a place in the queue. */
  mode: 'wait' | 'try'
  /** The place a previous busy answer of this acquire gave, or null. */
  place: unknown
}

/** What a busy answer tells the engine about when to look again. */
export interface WakeHint {
  /** Look again after at most this long (e.g. when the first live hold would expire), or null. */
  recheckInMs: number | null
  /** Store-private: what the store's watch needs (holder pids, session ids...). */
  readonly opaque: unknown
}

/**
 * One claim attempt. `contended`: another process is mid-transition, retry in a moment.
 * `retry`: the store's structure vanished under us (a cleaner removed the lock root); retry
 * with pacing. `unavailable`: the store cannot be reached (a server outage): `store_unavailable`.
 */
export type ClaimAttempt =
  | { kind: 'granted'; hold: Hold }
  | { kind: 'busy'; active: number; used: number; limit: number; wake: WakeHint; place?: unknown }
  | { kind: 'contended' }
  | { kind: 'retry'; reason: string }
  | { kind: 'unavailable'; reason: string; cause?: unknown }

export interface HolderStatus {
  slot: number
  state: SlotState
  /** Share of the limit the hold takes. */
  weight: number
  // Verbose only:
  pid?: number
  starttime?: string
  argv0?: string | null
  hostname?: string
  acquiredAt?: string
  fence?: number
  limit?: number
  metadata?: Metadata
  inconsistent?: boolean
  /** The slot's kernel lock is held, but not by the recorded process (which is gone): it was inherited. */
  lockInherited?: boolean
  problem?: string
}

export interface KeyStatus {
  key: string
  /** Holds not proven gone. */
  active: number
  /** Sum of their weights (what the limit bounds). */
  used: number
  /** Live places in the key's queue. */
  waiting: number
  /** Largest limit recorded by current holders, when any hold records one. */
  limit?: number
  holders: HolderStatus[]
  /** Entries of the key's directory that are not slot records (never counted); only when there are some. */
  stray?: string[]
}

export interface SweepReport {
  key: string
  dryRun: boolean
  reclaimed: Array<{ slot: number; pid?: number }>
  status: KeyStatus
}

/** Default bound on waiting behind a key's gate another process holds (release, inspection, sweeps). */
export const GATE_WAIT_MS = 10_000

/** How long an operation may wait behind a key's gate held by another process. */
export interface GateWait {
  waitMs: number
  signal?: AbortSignal
}

/** A directory of a key under the lock root; `key` is null when its key file is missing or unreadable. */
export interface KeyEntry {
  key: string | null
  dir: string
}

/** A live watch of a key, fed each busy answer's wake hint. */
export interface KeyWatch {
  /** False once the watch ended (its directory went away, its connection closed). */
  readonly alive: boolean
  /** Every change that could free a slot is announced: the engine may then pause longer. */
  readonly covered: boolean
  /**
   * What is announced is meant for this waiter alone (its place in a queue): while covered, the
   * engine's backoff poll is only a safety net and may be rare.
   */
  readonly targeted?: boolean
  /** Follows the latest busy answer (e.g. which holders' exits to watch). */
  update(wake: WakeHint): void
  close(): void
}

/** Handing a hold to a child process (the CLI's `run`); only stores with descriptors offer it. */
export interface HandOff {
  /**
   * Before the descriptor is shared: the record stops promising that its lock is only dropped
   * with the record (the child may close or unlock its copy while alive). False when lost.
   */
  share(hold: Hold): Promise<boolean>
  /** A read-only descriptor that carries the slot's kernel lock, for the child to inherit. */
  lockDescriptor(hold: Hold): number
  /** Rewrites the record to name the child. False when the hold is no longer ours. */
  transfer(hold: Hold, holder: HolderRecord): Promise<boolean>
  /**
   * Ends our share of the hold: drops our lock and removes the record unless another process
   * still holds the slot's lock (`shared`). `lost` says why the hold was no longer ours.
   */
  releaseUnlessShared(hold: Hold, wait?: GateWait): Promise<HandBack>
}

export interface PruneReport {
  dryRun: boolean
  /** Keys (or key directory names, where the key file is unreadable) removed, or that would be. */
  removed: string[]
  /** Keys left because they have holders or waiters, or were used within the idle time. */
  kept: number
}

export type LostCause = 'record_removed' | 'record_replaced'
export type HandBack = { outcome: 'released' | 'shared' } | { outcome: 'lost'; cause: LostCause }

/** The operations a lease store provides; see S1–S10 above. */
export interface LeaseStore {
  /** One claim attempt: judge, reclaim the proven gone, count, grant or answer. */
  claim(req: ClaimRequest): Promise<ClaimAttempt>
  /** Token-checked; false when the slot was no longer ours. Waits for the key's gate, bounded. */
  release(hold: Hold, wait?: GateWait): Promise<boolean>
  /** The synchronous release, where one exists (the exit hook uses it; others rely on S7). */
  releaseSync?(hold: Hold): boolean
  inspect(key: string, verbose: boolean, wait?: GateWait): Promise<KeyStatus>
  sweep(key: string, dryRun: boolean, verbose: boolean, wait?: GateWait): Promise<SweepReport>
  /**
   * Calls back when the key's holders may have changed (for a queued claim: when its turn may
   * have come); null when no watch can be had.
   */
  watch(key: string, wake: WakeHint, onChange: () => void, place?: unknown): Promise<KeyWatch | null>
  /** Gives up a queue place (abort, deadline, error); the next live place is told at once. */
  leave?(key: string, place: unknown): Promise<void>
  /** Removes keys with no holder and no waiter, idle for at least idleMs; fences never go back. */
  prune?(idleMs: number, dryRun: boolean): Promise<PruneReport>
  /** Keys that have held slots in this store. */
  listKeys?(): Promise<string[]>
  readonly handOff?: HandOff
  /** Ends the store's resources (S10). */
  close(): Promise<void>
}
