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
  problem?: string
}

export interface KeyStatus {
  key: string
  active: number
  /** Largest limit recorded by current holders, when any hold records one. */
  limit?: number
  holders: HolderStatus[]
}

export interface SweepReport {
  key: string
  dryRun: boolean
  reclaimed: Array<{ slot: number; pid?: number }>
  status: KeyStatus
}

/**
 * The atomic operations a lease store provides. The engine owns waiting, deadlines, aborts and
 * the lease object; a store owns serialization and judgement.
 */
export interface LeaseStore {
  tryClaim(req: ClaimRequest): ClaimAttempt
  /** Token-checked; false when the slot was no longer ours. Waits for the store's gate. */
  release(grant: Grant): Promise<boolean>
  releaseSync(grant: Grant): boolean
  inspect(key: string, verbose: boolean): Promise<KeyStatus>
  sweep(key: string, dryRun: boolean, verbose: boolean): Promise<SweepReport>
  /** Calls back when the key's holders may have changed; returns the unsubscribe. */
  watch(key: string, onChange: () => void): () => void
}
