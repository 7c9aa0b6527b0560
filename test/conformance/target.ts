// What a store gives the conformance suite (as ShedLock's abstract test asks each provider for
// its assertLocked): a fresh isolated spec, a way to open it, to read its storage without the
// engine, to break it on purpose, and its declared abilities. One target per store configuration.
import type { HolderRecord } from '../../lib/classify.js'
import type { LeaseStore } from '../../lib/lease/store.js'
import type { HolderFactory } from './holders.js'

/** The rules a faulty twin breaks: each safety check must catch its store when broken so. */
export type Fault =
  /** Admits one holder beyond the limit. */
  | 'overAdmit'
  /** Reclaims holds no witness proves gone (a holder that is merely unverifiable). */
  | 'reclaimOnSuspicion'
  /** Skips the per-key serialization of transitions. */
  | 'noGate'
  /** Counts only holds below the limit, forgetting those above a lowered one (lesson 4). */
  | 'countByIndex'
  /** Release removes whatever holds the slot, not only its own hold (optional: see optionalFaults). */
  | 'releaseIgnoresToken'
  /** Grants whatever fits, ignoring the queue: later waiters and tries overtake earlier ones (S11). */
  | 'barge'
  /** Counts holders, not their weights, against the limit (S1 with weights). */
  | 'sumByCount'
  /** A grant reads the takeover notice without taking it: more than one holder learns of a crash (S12). */
  | 'noticeTwice'
  /** A sweep (reclaimLeases, status) reclaims a crashed holder without leaving its notice (S12). */
  | 'sweepDropsNotice'
  /** A place keeps counting after its waiter is proven gone: a dead waiter blocks those behind it (S11). */
  | 'deadPlacesCount'
  /** `leave` keeps the place: an aborted waiter blocks those behind it (S11). */
  | 'leaveIgnored'
  /** A hold lost behind its holder's back never aborts its signal (S7). */
  | 'quietLoss'
  /** Prune forgets the key's fences: they go back after a key is pruned (S4). */
  | 'pruneResetsFence'
  /** Prune removes keys that are held or waited on. */
  | 'pruneBusy'

/**
 * Faults a store may lack a seam for; every store offers the others. The issue-10 faults are
 * optional until each store grows its seams: their twins are then skipped with the reason.
 */
export type OptionalFault = Exclude<Fault, 'overAdmit' | 'reclaimOnSuspicion' | 'noGate' | 'countByIndex'>

/** What is in storage for a key, read directly (no engine, no judgement). */
export interface Peek {
  holds: number
  fences: number[]
}

export interface Capabilities {
  /** `store.releaseSync` exists (the exit hook releases with it). */
  releaseSync: boolean
  /** `store.handOff` exists (the CLI hands a hold to its command). */
  handOff: boolean
  /** `store.listKeys` exists. */
  listKeys: boolean
  /** A claim can be stopped after judging and counting, under the key's gate (forced interleavings). */
  pauseMidClaim: boolean
  /**
   * A stopped (SIGSTOPped) holder keeps its slot for as long as it is stopped. True for the file
   * store (its witnesses say alive); a store whose holds expire (a TTL) reclaims it later instead.
   */
  stoppedHolderKept: boolean
  /**
   * `held()` turns false at once when the hold is removed behind its holder's back. True for the
   * file store (it looks at its own file); a networked store learns it at its next renewal.
   */
  heldSeesEviction: boolean
  /** Holds record the limit their holder asked for (inspection then reports the largest). */
  recordsLimit: boolean
  /** `store.prune` exists (pruneLeaseKeys). */
  prune: boolean
}

export interface StoreTarget<S extends object> {
  name: string
  /** A fresh, isolated store (new root, new schema), described as plain JSON. */
  spec(): Promise<S>
  /** Opens the store a spec describes (openStore for the library's stores). */
  open(spec: S): LeaseStore
  /** The holds stored for a key, read without the engine. */
  peek(spec: S, key: string): Promise<Peek>
  /** Removes the hold in `slot` behind its holder's back (an operator, a cleaner, an expiry). */
  evict(spec: S, key: string, slot: number): Promise<void>
  /**
   * Removes all of the store's storage behind every holder's back (an operator's `rm -rf` of the
   * lock root); absent where no such thing can happen to the store.
   */
  wipe?(spec: S): Promise<void>
  /** The same store, broken in one rule (an optional fault only when listed in optionalFaults). */
  faulty(spec: S, fault: Fault): S
  /** The optional faults this store has a seam for; their twins are skipped, with the reason, otherwise. */
  optionalFaults: readonly OptionalFault[]
  /** False only for the in-memory reference store: its holders are simulated in this process. */
  crossProcess: boolean
  /** Holders of this store: processes opening the spec, or simulated ones. */
  holders(spec: S): HolderFactory
  /**
   * Identity fields that make a live holder one no witness of this store can prove alive or gone
   * (such a hold must stay, S2); `{}` when every live holder is so; null when no holder can be.
   */
  unverifiableHolder: Partial<HolderRecord> | null
  /** Makes the store unreachable until the returned function is called; null with the reason when it cannot be. */
  outage: { start(spec: S): Promise<() => Promise<void>> } | { none: string }
  /** Strings that locate the store's data (paths, schema names): busy errors must never show them. */
  secrets(spec: S, key: string): string[]
  capabilities: Capabilities
  /**
   * Contract rules this store is known to break today, by check, with what is wrong. The check
   * still runs, as an expected failure: once the store is fixed it passes, which fails the run
   * until the entry is removed. Never a silent skip.
   */
  knownDefects?: Partial<Record<KnownDefect, string>>
}

/** Checks a target may declare as known to fail (see knownDefects). */
export type KnownDefect = 'closedStoreStillAnswers'
