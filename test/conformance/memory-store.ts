// The in-memory reference store (test-only, like abstract-level's MinimalLevel): the contract of
// lib/lease/store.ts (S1–S10) with no I/O, so the conformance suite can run the engine against a
// store whose every rule is visible in a page of code. Engine bugs and store bugs then fail apart.
//
// A MemoryWorld is the shared storage (what a lock root or a database is to the real stores):
// every MemoryStore opened on the same world sees the same holds. Holders are judged by a
// liveness predicate the world is given, so tests "kill" a holder in-process by flipping it.
import { randomBytes } from 'node:crypto'
import type { HolderRecord } from '../../lib/classify.js'
import { LeaseError } from '../../lib/errors.js'
import type {
  ClaimAttempt,
  ClaimRequest,
  HolderStatus,
  Hold,
  KeyStatus,
  KeyWatch,
  LeaseStore,
  LostReason,
  SweepReport,
  WakeHint,
} from '../../lib/lease/store.js'
import type { Metadata } from '../../lib/lease/options.js'

/** What the world's witness says about a holder: only 'dead' is proof. */
export type Liveness = 'alive' | 'dead' | 'unknown'

export interface MemoryFaults {
  /** Skip the per-key gate (transitions interleave across an await). */
  noGate?: boolean
  /** Reclaim holders whose liveness is unknown. */
  reclaimOnSuspicion?: boolean
  /** Admit this many holders beyond the limit. */
  overAdmit?: number
  /** Count only holds whose slot is below the limit. */
  countByIndex?: boolean
  /** Release removes whatever holds the slot. */
  releaseIgnoresToken?: boolean
}

export interface MemorySeams {
  /** Awaited inside a claim, after judging and counting, under the key's gate. */
  afterScan?: () => void | Promise<void>
}

interface Stored {
  key: string
  slot: number
  token: string
  fence: number
  limit: number
  holder: HolderRecord
  metadata: Metadata
  acquiredAt: string
  lost: AbortController
}

interface MemoryHandle {
  stored: Stored
  store: MemoryStore
  released: boolean
}

export class MemoryWorld {
  /** Holds per key, by slot. */
  readonly keys = new Map<string, Map<number, Stored>>()
  /** Largest fence ever granted per key: never forgotten, so fences only grow. */
  private readonly fences = new Map<string, number>()
  private readonly gates = new Set<string>()
  private readonly listeners = new Map<string, Set<() => void>>()
  /** While true every store call answers as a server outage would. */
  unavailable = false

  constructor(readonly liveness: (holder: HolderRecord) => Liveness) {}

  nextFence(key: string): number {
    const f = (this.fences.get(key) ?? 0) + 1
    this.fences.set(key, f)
    return f
  }

  holds(key: string): Map<number, Stored> {
    let m = this.keys.get(key)
    if (!m) {
      m = new Map()
      this.keys.set(key, m)
    }
    return m
  }

  tryGate(key: string): boolean {
    if (this.gates.has(key)) return false
    this.gates.add(key)
    return true
  }

  openGate(key: string): void {
    this.gates.delete(key)
  }

  listen(key: string, fn: () => void): () => void {
    let set = this.listeners.get(key)
    if (!set) {
      set = new Set()
      this.listeners.set(key, set)
    }
    set.add(fn)
    return () => set.delete(fn)
  }

  /** Something that could free a slot happened: a release, a removal, a holder's death. */
  changed(key?: string): void {
    const sets = key === undefined ? [...this.listeners.values()] : [this.listeners.get(key) ?? new Set<() => void>()]
    for (const set of sets) for (const fn of [...set]) fn()
  }

  /** Removes a hold behind its holder's back (an operator, an expiry): its signal fires at once. */
  evict(key: string, slot: number): void {
    const s = this.keys.get(key)?.get(slot)
    if (!s) throw new Error(`no hold in slot ${slot} of ${key}`)
    this.keys.get(key)?.delete(slot)
    s.lost.abort('lost' satisfies LostReason)
    this.changed(key)
  }
}

export class MemoryStore implements LeaseStore {
  private closed = false
  private readonly mine = new Set<MemoryHandle>()

  constructor(
    private readonly world: MemoryWorld,
    private readonly faults: MemoryFaults = {},
    private readonly seams: MemorySeams = {},
  ) {}

  private checkOpen(): void {
    if (this.closed) throw new LeaseError('store_closed', 'the lease store was closed')
  }

  async claim(req: ClaimRequest): Promise<ClaimAttempt> {
    this.checkOpen()
    if (this.world.unavailable) return { kind: 'unavailable', reason: 'switched_off', cause: new Error('memory world switched off') }
    const gated = this.faults.noGate !== true
    if (gated && !this.world.tryGate(req.key)) return { kind: 'contended' }
    try {
      const holds = this.world.holds(req.key)
      let active = 0
      for (const [slot, s] of [...holds]) {
        const live = this.world.liveness(s.holder)
        if (live === 'dead' || (live === 'unknown' && this.faults.reclaimOnSuspicion === true)) {
          holds.delete(slot)
          s.lost.abort('lost' satisfies LostReason)
          continue
        }
        if (this.faults.countByIndex === true && slot >= req.limit) continue
        active++
      }
      if (active >= req.limit + (this.faults.overAdmit ?? 0)) {
        return { kind: 'busy', active, used: active, limit: req.limit, wake: { recheckInMs: null, opaque: req.key } }
      }
      await this.seams.afterScan?.()
      let slot = 0
      while (holds.has(slot)) slot++
      const stored: Stored = {
        key: req.key,
        slot,
        token: randomBytes(16).toString('hex'),
        fence: this.world.nextFence(req.key),
        limit: req.limit,
        holder: req.holder,
        metadata: req.metadata,
        acquiredAt: new Date().toISOString(),
        lost: new AbortController(),
      }
      holds.set(slot, stored)
      const handle: MemoryHandle = { stored, store: this, released: false }
      this.mine.add(handle)
      return { kind: 'granted', hold: this.holdOf(handle) }
    } finally {
      if (gated) this.world.openGate(req.key)
    }
  }

  /** The engine's view of a hold; `held()` answers from storage, right now. */
  private holdOf(h: MemoryHandle): Hold {
    const s = h.stored
    const world = this.world
    // Built apart from the return, so the hold may carry members newer than this file's Hold type.
    const hold = {
      key: s.key,
      slot: s.slot,
      token: s.token,
      fence: s.fence,
      weight: 1,
      recovered: null,
      signal: s.lost.signal,
      handle: h,
      held: (): boolean => !h.released && !s.lost.signal.aborted && world.keys.get(s.key)?.get(s.slot)?.token === s.token,
    }
    return hold
  }

  async release(hold: Hold): Promise<boolean> {
    return this.releaseSync(hold)
  }

  releaseSync(hold: Hold): boolean {
    const h = hold.handle as MemoryHandle
    if (h.released) return false
    h.released = true
    this.mine.delete(h)
    const holds = this.world.holds(hold.key)
    // Token-checked: the slot may hold another's record by now.
    const current = holds.get(hold.slot)
    if (current?.token !== hold.token) {
      if (current !== undefined && this.faults.releaseIgnoresToken === true) holds.delete(hold.slot)
      h.stored.lost.abort('lost' satisfies LostReason)
      return false
    }
    holds.delete(hold.slot)
    this.world.changed(hold.key)
    return true
  }

  private judged(key: string): Array<{ s: Stored; live: Liveness }> {
    return [...(this.world.keys.get(key)?.values() ?? [])].map((s) => ({ s, live: this.world.liveness(s.holder) })).sort((a, b) => a.s.slot - b.s.slot)
  }

  private status(key: string, judged: Array<{ s: Stored; live: Liveness }>, verbose: boolean): KeyStatus {
    const holders: HolderStatus[] = judged.map(({ s, live }) => {
      const h: HolderStatus = { slot: s.slot, state: live === 'unknown' ? 'unverifiable' : live, weight: 1 }
      if (verbose) {
        Object.assign(h, { pid: s.holder.pid, starttime: s.holder.starttime, argv0: s.holder.argv0, hostname: s.holder.hostname, acquiredAt: s.acquiredAt, fence: s.fence, limit: s.limit, metadata: s.metadata })
      }
      return h
    })
    const active = judged.filter((j) => j.live !== 'dead').length
    const out: KeyStatus = { key, active, used: active, waiting: 0, holders }
    if (judged.length > 0) out.limit = Math.max(...judged.map((j) => j.s.limit))
    return out
  }

  private outage(): void {
    if (this.world.unavailable) throw new LeaseError('store_unavailable', 'the lease store is unavailable (switched_off)')
  }

  async inspect(key: string, verbose: boolean): Promise<KeyStatus> {
    this.checkOpen()
    this.outage()
    return this.status(key, this.judged(key), verbose)
  }

  async sweep(key: string, dryRun: boolean, verbose: boolean): Promise<SweepReport> {
    this.checkOpen()
    this.outage()
    const reclaimed: SweepReport['reclaimed'] = []
    const remaining: Array<{ s: Stored; live: Liveness }> = []
    for (const j of this.judged(key)) {
      if (j.live !== 'dead') {
        remaining.push(j)
        continue
      }
      reclaimed.push(verbose ? { slot: j.s.slot, pid: j.s.holder.pid } : { slot: j.s.slot })
      if (dryRun) {
        remaining.push(j)
      } else {
        this.world.keys.get(key)?.delete(j.s.slot)
        j.s.lost.abort('lost' satisfies LostReason)
      }
    }
    if (!dryRun && reclaimed.length > 0) this.world.changed(key)
    return { key, dryRun, reclaimed, status: this.status(key, remaining, verbose) }
  }

  /** Every change that could free a slot is announced (releases, removals, deaths, outages ending). */
  async watch(key: string, _wake: WakeHint, onChange: () => void): Promise<KeyWatch> {
    this.checkOpen()
    let stop: (() => void) | null = this.world.listen(key, onChange)
    const w: KeyWatch & { alive: boolean } = {
      alive: true,
      covered: true,
      update(): void {},
      close(): void {
        w.alive = false
        stop?.()
        stop = null
      },
    }
    return w
  }

  async listKeys(): Promise<string[]> {
    this.checkOpen()
    return [...this.world.keys].filter(([, m]) => m.size > 0).map(([k]) => k).sort()
  }

  /** Idempotent; ends this store's remaining holds as release() would. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const h of [...this.mine]) this.releaseSync(this.holdOf(h))
  }
}
