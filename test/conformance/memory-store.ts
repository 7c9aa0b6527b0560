// The in-memory reference store (test-only, like abstract-level's MinimalLevel): the contract of
// lib/lease/store.ts (S1–S12) with no I/O, so the conformance suite can run the engine against a
// store whose every rule is visible in a few pages of code. Engine bugs and store bugs then fail apart.
//
// A MemoryWorld is the shared storage (what a lock root or a database is to the real stores):
// every MemoryStore opened on the same world sees the same holds, queues and notices. Holders and
// waiters are judged by a liveness predicate the world is given, so tests "kill" one in-process by
// flipping it (and crash its store, so the dead one makes no further calls).
//
// The rules, each in one place:
//   weights  a claim fits when the weights of the holds not proven gone, plus its own, are <= limit;
//   order    a fair waiting claim takes a place at the queue's end on its first busy answer; a claim
//            is granted only when it fits and it is its turn: its place is the first live one, or
//            it has none and no live place exists; `fair: false` ignores the queue (S11);
//   notices  a hold proven gone and removed (by a claim or a sweep) leaves its record as a notice;
//            the next grant of the key takes exactly one (S12);
//   prune    removes keys with no hold and no live place, idle long enough; fences and notices are
//            kept apart from the key, so a pruned key's fences never go back and no notice is lost.
import { randomBytes } from 'node:crypto'
import type { HolderRecord } from '../../lib/classify.js'
import { LeaseError } from '../../lib/errors.js'
import type { Metadata } from '../../lib/lease/options.js'
import type {
  ClaimAttempt,
  ClaimRequest,
  Hold,
  HolderStatus,
  KeyStatus,
  KeyWatch,
  LeaseStore,
  LostReason,
  PruneReport,
  RecoveredHolder,
  SweepReport,
  WakeHint,
} from '../../lib/lease/store.js'

/** What the world's witness says about a holder or waiter: only 'dead' is proof. */
export type Liveness = 'alive' | 'dead' | 'unknown'

/** Each fault breaks one rule, so a check of that rule can prove it catches the break. */
export interface MemoryFaults {
  /** Skip the per-key gate (transitions interleave across an await). */
  noGate?: boolean
  /** Reclaim holders (and drop places) whose liveness is unknown. */
  reclaimOnSuspicion?: boolean
  /** Admit this much weight beyond the limit. */
  overAdmit?: number
  /** Count only holds whose slot is below the limit. */
  countByIndex?: boolean
  /** Release removes whatever holds the slot. */
  releaseIgnoresToken?: boolean
  /** Grant whatever fits, ignoring the queue (waiters still take places). */
  barge?: boolean
  /** Count holders, not their weights, against the limit (the claim's own weight too: weights ignored). */
  sumByCount?: boolean
  /** Grants read the takeover notice without taking it: every later grant gets it. */
  noticeTwice?: boolean
  /** A sweep removes the proven gone without leaving their notices. */
  sweepDropsNotice?: boolean
  /** A place counts until it is left, even after its waiter is proven gone. */
  deadPlacesCount?: boolean
  /** leave() keeps the place. */
  leaveIgnored?: boolean
  /** Holds removed behind their holder's back never fire their signal. */
  quietLoss?: boolean
  /** Prune forgets the key's fences (they start again from 1). */
  pruneResetsFence?: boolean
  /** Prune removes keys whatever holds them or waits on them. */
  pruneBusy?: boolean
}

export interface MemorySeams {
  /** Awaited inside a claim that will grant, after judging and counting, under the key's gate. */
  afterScan?: () => void | Promise<void>
}

interface Stored {
  key: string
  slot: number
  token: string
  fence: number
  limit: number
  weight: number
  holder: HolderRecord
  metadata: Metadata
  acquiredAt: string
  lost: AbortController
}

/** A waiter's place in a key's queue; the object itself is the opaque `place` the engine keeps. */
interface Place {
  readonly key: string
  readonly holder: HolderRecord
  readonly weight: number
}

interface MemoryHandle {
  stored: Stored
  released: boolean
}

const never = <T>(): Promise<T> => new Promise<T>(() => {})

export class MemoryWorld {
  /** Holds per key, by slot. */
  readonly keys = new Map<string, Map<number, Stored>>()
  /** Waiters' places per key, oldest first. */
  readonly queues = new Map<string, Place[]>()
  /** When each key was last used (claimed, released, left); a key exists while it is here. */
  readonly lastUsed = new Map<string, number>()
  /** Largest fence ever granted per key: kept through prune and wipe, so fences only grow. */
  readonly fences = new Map<string, number>()
  /** Notices of holders proven gone, per key, for the next grants (kept through prune). */
  readonly notices = new Map<string, RecoveredHolder[]>()
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

  queue(key: string): Place[] {
    let q = this.queues.get(key)
    if (!q) {
      q = []
      this.queues.set(key, q)
    }
    return q
  }

  touch(key: string): void {
    this.lastUsed.set(key, Date.now())
  }

  /** Removes a hold proven gone, leaving its notice unless told not to. */
  reclaim(s: Stored, notice: boolean): void {
    this.keys.get(s.key)?.delete(s.slot)
    s.lost.abort('lost' satisfies LostReason)
    if (!notice) return
    const list = this.notices.get(s.key) ?? []
    const { slot, fence, weight, metadata, acquiredAt } = s
    list.push({ slot, pid: s.holder.pid, hostname: s.holder.hostname, argv0: s.holder.argv0, acquiredAt, fence, weight, metadata })
    this.notices.set(s.key, list)
  }

  /** The oldest pending notice of the key; taken (removed) unless `take` is false. */
  notice(key: string, take: boolean): RecoveredHolder | null {
    const list = this.notices.get(key)
    if (!list || list.length === 0) return null
    return (take ? list.shift() : list[0]) ?? null
  }

  /** Forgets a key (prune): its holds, places and idle time. Fences and notices stay. */
  forget(key: string, resetFence: boolean): void {
    this.keys.delete(key)
    this.queues.delete(key)
    this.lastUsed.delete(key)
    if (resetFence) this.fences.delete(key)
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

  /**
   * Something that could make a waiter's turn: a release, a removal, a grant, a place left, a
   * death. Watchers are told newest first: a watch is only a hint (S9), and this way a store that
   * ignored the queue would serve the latest waiter first instead of passing an order check by luck.
   */
  changed(key?: string): void {
    const sets = key === undefined ? [...this.listeners.values()] : [this.listeners.get(key) ?? new Set<() => void>()]
    for (const set of sets) for (const fn of [...set].reverse()) fn()
  }

  /** Removes a hold behind its holder's back (an operator, an expiry): its signal fires at once. */
  evict(key: string, slot: number): void {
    const s = this.keys.get(key)?.get(slot)
    if (!s) throw new Error(`no hold in slot ${slot} of ${key}`)
    this.keys.get(key)?.delete(slot)
    s.lost.abort('lost' satisfies LostReason)
    this.changed(key)
  }

  /** Everything but the fences vanishes (a wiped lock root): every hold is lost, every place gone. */
  wipe(): void {
    const lost = [...this.keys.values()].flatMap((m) => [...m.values()])
    this.keys.clear()
    this.queues.clear()
    this.lastUsed.clear()
    this.notices.clear()
    for (const s of lost) s.lost.abort('lost' satisfies LostReason)
    this.changed()
  }
}

export class MemoryStore implements LeaseStore {
  private closed = false
  /** Crashed: like a killed process, it never answers again and gives nothing up. */
  private crashed = false
  private readonly mine = new Set<MemoryHandle>()
  private readonly myPlaces = new Set<Place>()

  constructor(
    private readonly world: MemoryWorld,
    private readonly faults: MemoryFaults = {},
    private readonly seams: MemorySeams = {},
  ) {}

  /** Simulates the death of the process owning this store: pending and later calls never settle. */
  crash(): void {
    this.crashed = true
  }

  private checkOpen(): void {
    if (this.closed) throw new LeaseError('store_closed', 'the lease store was closed')
  }

  /** Proven gone (or, broken, merely unverifiable). */
  private gone(holder: HolderRecord): boolean {
    const live = this.world.liveness(holder)
    return live === 'dead' || (live === 'unknown' && this.faults.reclaimOnSuspicion === true)
  }

  private placeCounts(p: Place): boolean {
    return this.faults.deadPlacesCount === true || !this.gone(p.holder)
  }

  /** Holds not proven gone, and their weights' sum (what the limit bounds). */
  private count(holds: Iterable<Stored>, limit: number | null): { active: number; used: number } {
    let active = 0
    let used = 0
    for (const s of holds) {
      if (this.gone(s.holder)) continue
      if (limit !== null && this.faults.countByIndex === true && s.slot >= limit) continue
      active++
      used += this.faults.sumByCount === true ? 1 : s.weight
    }
    return { active, used }
  }

  async claim(req: ClaimRequest): Promise<ClaimAttempt> {
    if (this.crashed) return never()
    this.checkOpen()
    if (this.world.unavailable) return { kind: 'unavailable', reason: 'switched_off', cause: new Error('memory world switched off') }
    const gated = this.faults.noGate !== true
    if (gated && !this.world.tryGate(req.key)) return { kind: 'contended' }
    let changed = false
    try {
      this.world.touch(req.key)
      const holds = this.world.holds(req.key)
      for (const s of [...holds.values()]) {
        if (!this.gone(s.holder)) continue
        this.world.reclaim(s, true)
        changed = true
      }
      const queue = this.world.queue(req.key)
      for (const p of [...queue]) {
        if (this.placeCounts(p)) continue
        queue.splice(queue.indexOf(p), 1)
        changed = true
      }
      const { active, used } = this.count(holds.values(), req.limit)
      const mine = req.place === null ? -1 : queue.indexOf(req.place as Place)
      const weight = this.faults.sumByCount === true ? 1 : req.weight
      const fits = used + weight <= req.limit + (this.faults.overAdmit ?? 0)
      const ignoresQueue = !req.fair || this.faults.barge === true
      const turn = ignoresQueue || (mine === -1 ? queue.length === 0 : mine === 0)
      if (!fits || !turn) {
        let place = mine === -1 ? undefined : queue[mine]
        if (place === undefined && req.fair && req.mode === 'wait') {
          place = { key: req.key, holder: req.holder, weight: req.weight }
          queue.push(place)
          this.myPlaces.add(place)
        }
        const busy: ClaimAttempt = { kind: 'busy', active, used, limit: req.limit, wake: { recheckInMs: null, opaque: req.key } }
        return place === undefined ? busy : { ...busy, place }
      }
      if (this.seams.afterScan) await this.seams.afterScan()
      if (mine !== -1) {
        const at = queue.indexOf(req.place as Place)
        if (at !== -1) queue.splice(at, 1)
        this.myPlaces.delete(req.place as Place)
        // The next place is now the first: its turn may have come.
        changed = true
      }
      let slot = 0
      while (holds.has(slot)) slot++
      const stored: Stored = {
        key: req.key,
        slot,
        token: randomBytes(16).toString('hex'),
        fence: this.world.nextFence(req.key),
        limit: req.limit,
        weight: req.weight,
        holder: req.holder,
        metadata: req.metadata,
        acquiredAt: new Date().toISOString(),
        lost: new AbortController(),
      }
      holds.set(slot, stored)
      const handle: MemoryHandle = { stored, released: false }
      this.mine.add(handle)
      const recovered = this.world.notice(req.key, this.faults.noticeTwice !== true)
      return { kind: 'granted', hold: this.holdOf(handle, recovered) }
    } finally {
      if (gated) this.world.openGate(req.key)
      if (changed) this.world.changed(req.key)
    }
  }

  /** The engine's view of a hold; `held()` answers from storage, right now. */
  private holdOf(h: MemoryHandle, recovered: RecoveredHolder | null): Hold {
    const s = h.stored
    const world = this.world
    const signal = this.faults.quietLoss === true ? new AbortController().signal : s.lost.signal
    return {
      key: s.key,
      slot: s.slot,
      token: s.token,
      fence: s.fence,
      weight: s.weight,
      recovered,
      signal,
      handle: h,
      held: (): boolean => !h.released && world.keys.get(s.key)?.get(s.slot)?.token === s.token,
    }
  }

  async release(hold: Hold): Promise<boolean> {
    if (this.crashed) return never()
    return this.releaseSync(hold)
  }

  releaseSync(hold: Hold): boolean {
    if (this.crashed) return false
    const h = hold.handle as MemoryHandle
    if (h.released) return false
    h.released = true
    this.mine.delete(h)
    const holds = this.world.holds(hold.key)
    this.world.touch(hold.key)
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

  async leave(key: string, place: unknown): Promise<void> {
    if (this.crashed) return never()
    // A closed store already gave up its places (close() below): nothing is left to leave.
    if (this.closed) return
    this.myPlaces.delete(place as Place)
    if (this.faults.leaveIgnored === true) return
    const queue = this.world.queues.get(key)
    const at = queue?.indexOf(place as Place) ?? -1
    if (queue && at !== -1) queue.splice(at, 1)
    this.world.touch(key)
    this.world.changed(key)
  }

  private status(key: string, holds: Stored[], verbose: boolean): KeyStatus {
    const sorted = [...holds].sort((a, b) => a.slot - b.slot)
    const holders: HolderStatus[] = sorted.map((s) => {
      const live = this.world.liveness(s.holder)
      const h: HolderStatus = { slot: s.slot, state: live === 'unknown' ? 'unverifiable' : live, weight: s.weight }
      if (verbose) {
        Object.assign(h, { pid: s.holder.pid, starttime: s.holder.starttime, argv0: s.holder.argv0, hostname: s.holder.hostname, acquiredAt: s.acquiredAt, fence: s.fence, limit: s.limit, metadata: s.metadata })
      }
      return h
    })
    const { active, used } = this.count(sorted, null)
    const waiting = (this.world.queues.get(key) ?? []).filter((p) => this.placeCounts(p)).length
    const out: KeyStatus = { key, active, used, waiting, holders }
    if (sorted.length > 0) out.limit = Math.max(...sorted.map((s) => s.limit))
    return out
  }

  private outage(): void {
    if (this.world.unavailable) throw new LeaseError('store_unavailable', 'the lease store is unavailable (switched_off)')
  }

  async inspect(key: string, verbose: boolean): Promise<KeyStatus> {
    if (this.crashed) return never()
    this.checkOpen()
    this.outage()
    return this.status(key, [...(this.world.keys.get(key)?.values() ?? [])], verbose)
  }

  async sweep(key: string, dryRun: boolean, verbose: boolean): Promise<SweepReport> {
    if (this.crashed) return never()
    this.checkOpen()
    this.outage()
    const reclaimed: SweepReport['reclaimed'] = []
    const remaining: Stored[] = []
    const holds = [...(this.world.keys.get(key)?.values() ?? [])].sort((a, b) => a.slot - b.slot)
    for (const s of holds) {
      if (!this.gone(s.holder)) {
        remaining.push(s)
        continue
      }
      reclaimed.push(verbose ? { slot: s.slot, pid: s.holder.pid } : { slot: s.slot })
      if (dryRun) remaining.push(s)
      else this.world.reclaim(s, this.faults.sweepDropsNotice !== true)
    }
    if (!dryRun) {
      const queue = this.world.queues.get(key) ?? []
      const places = queue.length
      for (const p of [...queue]) if (!this.placeCounts(p)) queue.splice(queue.indexOf(p), 1)
      if (reclaimed.length > 0 || queue.length < places) this.world.changed(key)
    }
    return { key, dryRun, reclaimed, status: this.status(key, remaining, verbose) }
  }

  /** Every change that could make a waiter's turn is announced (releases, removals, deaths, outages ending). */
  async watch(key: string, _wake: WakeHint, onChange: () => void): Promise<KeyWatch> {
    if (this.crashed) return never()
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

  async prune(idleMs: number, dryRun: boolean): Promise<PruneReport> {
    if (this.crashed) return never()
    this.checkOpen()
    this.outage()
    const now = Date.now()
    const removed: string[] = []
    let kept = 0
    for (const [key, at] of [...this.world.lastUsed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      // A claim of the key in flight (its gate held) makes it busy too: never pruned under a claim.
      if (!this.world.tryGate(key)) {
        kept++
        continue
      }
      try {
        const held = (this.world.keys.get(key)?.size ?? 0) > 0
        const waited = (this.world.queues.get(key) ?? []).some((p) => this.placeCounts(p))
        const busy = this.faults.pruneBusy !== true && (held || waited)
        if (busy || now - at < idleMs) {
          kept++
          continue
        }
        removed.push(key)
        if (!dryRun) this.world.forget(key, this.faults.pruneResetsFence === true)
      } finally {
        this.world.openGate(key)
      }
    }
    return { dryRun, removed, kept }
  }

  async listKeys(): Promise<string[]> {
    if (this.crashed) return never()
    this.checkOpen()
    return [...this.world.lastUsed.keys()].sort()
  }

  /** Idempotent; ends this store's remaining holds as release() would and gives up its places. */
  async close(): Promise<void> {
    if (this.closed || this.crashed) return
    this.closed = true
    for (const h of [...this.mine]) this.releaseSync(this.holdOf(h, null))
    for (const p of [...this.myPlaces]) {
      const queue = this.world.queues.get(p.key)
      const at = queue?.indexOf(p) ?? -1
      if (queue && at !== -1) queue.splice(at, 1)
      this.world.changed(p.key)
    }
    this.myPlaces.clear()
  }
}
