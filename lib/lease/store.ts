import type { HolderRecord } from '../classify.js'
import type { Metadata } from './options.js'
import type { SlotState } from './witness.js'

/** A granted slot as the engine sees it; stores keep their private state behind `handle`. */
export interface Grant {
  key: string
  slot: number
  token: string
  fence: number
  readonly handle: unknown
}

export interface ClaimRequest {
  key: string
  limit: number
  metadata: Metadata
  holder: HolderRecord
}

/**
 * One claim attempt. `contended`: another process is mid-transition, retry in a moment.
 * `retry`: the store's structure vanished under us (a cleaner removed the lock root); retry
 * with pacing.
 */
export type ClaimAttempt =
  | { kind: 'granted'; grant: Grant }
  | {
      kind: 'busy'
      active: number
      limit: number
      /** Local processes whose exit would free a slot, or null when some holder has none. */
      holderPids: number[] | null
      /** Identity of what a watch of the key observes; a watch of anything else is re-armed. */
      watchId: string | null
    }
  | { kind: 'contended' }
  | { kind: 'retry'; reason: string }

export interface HolderStatus {
  slot: number
  state: SlotState
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
  active: number
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

/** A live watch of a key; `alive` turns false when the watch ended (its directory went away). */
export interface KeyWatch {
  readonly id: string
  readonly alive: boolean
  close(): void
}

/** Handing a hold to a child process (the CLI's `run`); only stores with descriptors offer it. */
export interface HandOff {
  /** A read-only descriptor that carries the slot's kernel lock, for the child to inherit. */
  lockDescriptor(grant: Grant): number
  /** Rewrites the record to name the child. False when the hold is no longer ours. */
  transfer(grant: Grant, holder: HolderRecord): Promise<boolean>
  /**
   * Ends our share of the hold: drops our lock and removes the record unless another process
   * still holds the slot's lock (`shared`). `lost` says why the hold was no longer ours.
   */
  releaseUnlessShared(grant: Grant, wait?: GateWait): Promise<HandBack>
}

export type LostCause = 'record_removed' | 'record_replaced'
export type HandBack = { outcome: 'released' | 'shared' } | { outcome: 'lost'; cause: LostCause }

/**
 * The atomic operations a lease store provides. The engine owns waiting, deadlines, aborts and
 * the lease object; a store owns serialization and judgement.
 */
export interface LeaseStore {
  tryClaim(req: ClaimRequest): ClaimAttempt
  /** Token-checked; false when the slot was no longer ours. Waits for the store's gate, bounded. */
  release(grant: Grant, wait?: GateWait): Promise<boolean>
  releaseSync(grant: Grant): boolean
  inspect(key: string, verbose: boolean, wait?: GateWait): Promise<KeyStatus>
  sweep(key: string, dryRun: boolean, verbose: boolean, wait?: GateWait): Promise<SweepReport>
  /** Calls back when the key's holders may have changed; null when no watch can be had. */
  watch(key: string, onChange: () => void): KeyWatch | null
  readonly handOff?: HandOff
}
