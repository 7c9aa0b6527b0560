// The PostgreSQL store (`proclease/postgres`): the same leases across hosts, on a server the user
// already runs. A claim, on this process's holder session:
//   1. connects (once): checks for a transaction-mode pooler, creates or upgrades the schema;
//   2. calls the server-side claim function — one round trip (schema.ts has the algorithm): it
//      judges every hold with the session witness and with the expiries this process has itself
//      observed, reclaims the proven gone, counts, and grants or answers busy;
//   3. on a grant, keeps the hold alive with a heartbeat (ttl/3) and a local deadline, and aborts
//      hold.signal ('expired', 'connection_lost', 'lost') before anyone else could be granted it;
//   4. on busy, remembers each hold's renew counter and when it was first seen: a hold seen
//      unrenewed for its whole TTL on this process's monotonic clock is passed as expired next
//      time. No wall clock is compared across hosts.
// Waiters are woken by NOTIFY on release and by blocking on a holder's session lock, one waiter per
// key at a time: the owner of the key's turnstile (watch.ts).
import { randomBytes } from 'node:crypto'
import { LeaseError } from '../../errors.js'
import type {
  ClaimAttempt,
  ClaimRequest,
  GateWait,
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
} from '../store.js'
import * as calls from './calls.js'
import { claimOutcome, isOutage, rethrow } from './errors.js'
import { Heartbeat } from './heartbeat.js'
import { type NormalizedPostgresOptions, type PostgresStoreOptions, normalizePostgresOptions } from './options.js'
import { detectPooler } from './pooler.js'
import { migrate } from './schema.js'
import { Session, holderSettings } from './session.js'
import type { Queryable } from './queryable.js'
import { Listener, SessionLockWaiter } from './watch.js'

export type { PostgresStoreOptions, PostgresConnection } from './options.js'

const MIGRATE_LOCK_TIMEOUT_MS = 30_000

interface PgHandle {
  key: string
  token: string
  lock: calls.LockKey
  session: Session
  heartbeat: Heartbeat | null
  lost: AbortController
  ended: boolean
}

interface Observed {
  renewCount: string
  /** When (this process's monotonic clock) it first saw the hold at this renew count. */
  since: number
  ttlMs: number
}

interface PgWake {
  key: string
  limit: number
  holds: calls.BusyHold[]
  /** The session lock of the live place just before ours (fair waiters), or null. */
  ahead: calls.LockKey | null
}

/** A queue place, as the engine carries it between attempts of one acquire. */
interface PgPlace {
  key: string
  token: string
  weight: number
}

function placeOf(key: string, v: unknown): PgPlace | null {
  if (typeof v !== 'object' || v === null) return null
  const p = v as Partial<PgPlace>
  return p.key === key && typeof p.token === 'string' && typeof p.weight === 'number' ? { key: p.key, token: p.token, weight: p.weight } : null
}

function recoveredOf(n: calls.Notice | null): RecoveredHolder | null {
  if (n === null) return null
  return {
    slot: n.slot,
    pid: n.pid ?? 0,
    hostname: n.hostname ?? '',
    argv0: n.argv0,
    acquiredAt: n.acquiredAt,
    fence: Number(n.fence),
    weight: n.weight,
    metadata: n.metadata as RecoveredHolder['metadata'],
  }
}

/** Creates a PostgreSQL lease store. Connects lazily, on first use. */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options)
}

/** Test seams; never set in production. */
export interface PostgresStoreSeams {
  /** This process's monotonic clock in ms (default performance.now): a skewed client in tests. */
  now?: () => number
  /**
   * The holder session's server settings (default holderSettings(ttl): keepalives of about two
   * TTLs, idle_session_timeout = 0). Tests give aggressive ones to show what the defaults prevent.
   */
  holderSettings?: (ttlMs: number) => Record<string, string>
  /** Runs on the holder session right after migration (tests install faulty function variants). */
  afterMigrate?: (session: Queryable) => Promise<void>
}

export class PostgresStore implements LeaseStore {
  private readonly o: NormalizedPostgresOptions
  private readonly now: () => number
  private readonly holderSettings: (ttlMs: number) => Record<string, string>
  private readonly afterMigrate: ((session: Queryable) => Promise<void>) | undefined
  private holderSession: Promise<Session> | null = null
  private listener: Promise<Listener | null> | null = null
  private readonly observed = new Map<string, Map<string, Observed>>()
  private readonly holds = new Set<PgHandle>()
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly waiters = new Set<SessionLockWaiter>()
  /** A pooler forges backend ids and breaks LISTEN: then waiters poll. */
  private pooled = false
  private closed = false
  private readonly id = randomBytes(4).toString('hex')

  constructor(options: PostgresStoreOptions, seams: PostgresStoreSeams = {}) {
    this.o = normalizePostgresOptions(options)
    this.now = seams.now ?? (() => performance.now())
    this.holderSettings = seams.holderSettings ?? holderSettings
    this.afterMigrate = seams.afterMigrate
  }

  /** The settings in force (after defaults), for diagnostics. */
  get settings(): Readonly<Omit<NormalizedPostgresOptions, 'connection'>> {
    const { connection: _c, ...rest } = this.o
    return rest
  }

  // ---- sessions ------------------------------------------------------------------------

  private openSession(purpose: string, onDead: (err: Error) => void): Promise<Session> {
    return Session.open({ connection: this.o.connection, ttlMs: this.o.ttlMs, callTimeoutMs: this.o.callTimeoutMs, purpose: `${purpose} ${this.id}`, onDead })
  }

  /**
   * A listener or waiter session, with the holder's settings (no idle_session_timeout to close
   * it while it waits). Opened only when no transaction pooler is in the way.
   */
  private async openTuned(purpose: string, onDead: (err: Error) => void): Promise<Session> {
    const s = await this.openSession(purpose, onDead)
    try {
      await s.apply(this.holderSettings(this.o.ttlMs))
    } catch (err) {
      await s.end()
      throw err
    }
    return s
  }

  /** The session that claims, holds (its advisory locks are the session witness) and renews. */
  private holder(): Promise<Session> {
    if (this.holderSession === null) {
      const opening = (async () => {
        // A session can die while it opens (before `s` is set): it holds nothing yet, and the
        // queries below fail on it as an outage.
        let opened: Session | null = null
        const s = await this.openSession('holder', (err) => {
          if (opened !== null) this.holderDied(opened, err)
        })
        opened = s
        try {
          // Through the session, so that its socket keeps the process alive while the probe runs.
          const probe = await detectPooler({ processID: s.client.processID ?? null, query: (text, values) => s.query(text, values) })
          if (probe.pooled && this.o.pooler !== 'session') {
            if (this.o.witness === 'session') {
              throw new LeaseError(
                'store_unsupported',
                "a connection pooler sits between proclease and PostgreSQL (the backend pid it announced is not the session's): a transaction-mode pooler breaks session locks. Connect directly, declare a session-mode pooler with pooler: 'session', or use witness: 'none' (expiry only)",
              )
            }
            // Session settings would land on a server session other clients share: none.
            this.pooled = true
          } else {
            await s.apply(this.holderSettings(this.o.ttlMs))
          }
          // A migration waits up to its own lock timeout (30 s) behind a concurrent one.
          if (this.o.migrate) await migrate(s.bounded(MIGRATE_LOCK_TIMEOUT_MS + this.o.callTimeoutMs), this.o.schema, { lockTimeoutMs: MIGRATE_LOCK_TIMEOUT_MS })
          if (this.afterMigrate) await this.afterMigrate(s)
          return s
        } catch (err) {
          await s.end()
          throw err
        }
      })()
      this.holderSession = opening
      opening.catch(() => {
        if (this.holderSession === opening) this.holderSession = null
      })
    }
    return this.holderSession
  }

  /** A dead holder session frees every session lock on it: its holds may be reclaimed now. */
  private holderDied(session: Session, _err: Error): void {
    void this.holderSession?.then(
      (s) => {
        if (s === session) this.holderSession = null
      },
      () => undefined,
    )
    for (const h of [...this.holds]) if (h.session === session) this.lose(h, 'connection_lost')
  }

  private lose(h: PgHandle, reason: LostReason): void {
    if (h.ended) return
    h.ended = true
    h.heartbeat?.stop()
    this.holds.delete(h)
    h.lost.abort(reason)
    // Given up locally (expired, lost): drop what is left on a live session — the row if it is
    // still ours, and the session lock either way — so it cannot outlive the hold.
    if (h.session.alive) {
      void this.track(calls.release(h.session, this.o.schema, h.key, h.token, h.lock, this.o.lockTimeoutMs)).catch(() => undefined)
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p)
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined)
    return p
  }

  private checkOpen(): void {
    if (this.closed) throw new LeaseError('store_closed', 'the PostgreSQL lease store was closed')
  }

  // ---- observed expiry ------------------------------------------------------------------

  private expiredFor(key: string, now: number): calls.ObservedExpiry[] {
    const seen = this.observed.get(key)
    if (!seen) return []
    const out: calls.ObservedExpiry[] = []
    for (const [token, o] of seen) if (now - o.since >= o.ttlMs) out.push({ token, renewCount: o.renewCount })
    return out
  }

  /**
   * Remembers the holds (and the places no witness speaks for) of a busy answer; returns how long
   * until the first would expire.
   */
  private observe(key: string, holds: ReadonlyArray<{ token: string; renewCount: string; ttlMs: number }>, seenAt: number): number | null {
    const prev = this.observed.get(key) ?? new Map<string, Observed>()
    const next = new Map<string, Observed>()
    let first: number | null = null
    for (const h of holds) {
      const p = prev.get(h.token)
      const o = p && p.renewCount === h.renewCount ? p : { renewCount: h.renewCount, since: seenAt, ttlMs: h.ttlMs }
      next.set(h.token, o)
      const left = o.since + o.ttlMs - seenAt
      first = first === null ? left : Math.min(first, left)
    }
    if (next.size > 0) this.observed.set(key, next)
    else this.observed.delete(key)
    return first === null ? null : Math.max(0, first) + 1
  }

  // ---- LeaseStore ---------------------------------------------------------------------

  async claim(req: ClaimRequest): Promise<ClaimAttempt> {
    this.checkOpen()
    checkKeyText(req.key)
    return this.track(this.claimOnce(req))
  }

  private async claimOnce(req: ClaimRequest): Promise<ClaimAttempt> {
    let session: Session
    try {
      session = await this.holder()
    } catch (err) {
      const o = claimOutcome(err)
      if (o !== null) return o
      return rethrow(err)
    }
    const sentAt = this.now()
    let r: calls.ClaimResult
    try {
      r = await calls.claim(session, this.o.schema, {
        key: req.key,
        limit: req.limit,
        ttlMs: this.o.ttlMs,
        witness: this.o.witness,
        expired: this.expiredFor(req.key, sentAt),
        holder: {
          pid: req.holder.pid,
          starttime: req.holder.starttime,
          argv0: req.holder.argv0,
          hostname: req.holder.hostname,
          bootId: req.holder.bootId,
          ...(req.holder.machineId !== null ? { machineId: req.holder.machineId } : {}),
          ...(req.holder.pidNamespace !== null ? { pidNamespace: req.holder.pidNamespace } : {}),
        },
        metadata: req.metadata,
        lockTimeoutMs: this.o.lockTimeoutMs,
        weight: req.weight,
        fair: req.fair,
        queue: req.fair && req.mode === 'wait',
        place: placeOf(req.key, req.place)?.token ?? null,
      })
    } catch (err) {
      const o = claimOutcome(err)
      if (o !== null) return o
      return rethrow(err)
    }
    const seenAt = this.now()
    if (r.outcome === 'busy') {
      const recheckInMs = this.observe(req.key, [...r.holds, ...r.observed], seenAt)
      const opaque: PgWake = { key: req.key, limit: r.limit, holds: r.holds, ahead: r.ahead }
      const busy: ClaimAttempt = { kind: 'busy', active: r.active, used: r.used, limit: r.limit, wake: { recheckInMs, opaque } }
      if (r.place !== null) {
        // The same place keeps the same object, so the engine keeps its watch.
        const prev = placeOf(req.key, req.place)
        busy.place = prev !== null && prev.token === r.place ? req.place : ({ key: req.key, token: r.place, weight: req.weight } satisfies PgPlace)
      }
      return busy
    }
    const fence = Number(r.fence)
    const lost = new AbortController()
    const h: PgHandle = { key: req.key, token: r.token, lock: r.lock, session, heartbeat: null, lost, ended: false }
    this.holds.add(h)
    h.heartbeat = new Heartbeat({
      ttlMs: this.o.ttlMs,
      grantedAt: sentAt,
      renew: async () => {
        const res = await calls.renew(session, this.o.schema, req.key, r.token, this.o.lockTimeoutMs)
        return res.outcome
      },
      onLost: (reason) => this.lose(h, reason),
      now: this.now,
    })
    // The session may have died while the answer travelled: the hold's witness is gone with it.
    if (!session.alive) this.lose(h, 'connection_lost')
    const hold: Hold = { key: req.key, slot: r.slot, token: r.token, fence, weight: req.weight, recovered: recoveredOf(r.recovered), signal: lost.signal, held: () => !h.ended && (h.heartbeat?.withinDeadline() ?? false), handle: h }
    return { kind: 'granted', hold }
  }

  async release(hold: Hold, _wait?: GateWait): Promise<boolean> {
    const h = hold.handle as PgHandle
    // Lost already (connection, expiry) or released: nothing of it is ours any more.
    if (h.ended) return false
    h.heartbeat?.pause()
    return this.track(
      (async () => {
        try {
          const r = await calls.release(h.session, this.o.schema, h.key, h.token, h.lock, this.o.lockTimeoutMs)
          h.heartbeat?.stop()
          h.ended = true
          this.holds.delete(h)
          if (!r.released) h.lost.abort('lost' satisfies LostReason)
          return r.released
        } catch (err) {
          if (isOutage(err) || !h.session.alive) {
            // The session is gone, and its session lock with it: the hold ends on the server by
            // the session witness (or its expiry). It was no longer ours to release.
            this.lose(h, 'connection_lost')
            return false
          }
          // Unknown outcome (e.g. a lock timeout): the hold stays, renewed, for a retry.
          h.heartbeat?.resume()
          return rethrow(err)
        }
      })(),
    )
  }

  async inspect(key: string, verbose: boolean, _wait?: GateWait): Promise<KeyStatus> {
    this.checkOpen()
    checkKeyText(key)
    return this.track(
      (async () => {
        const session = await this.holderOrThrow()
        let ins: calls.Inspection
        try {
          ins = await calls.inspect(session, this.o.schema, key, { expired: this.expiredFor(key, this.now()), verbose })
        } catch (err) {
          return rethrow(err)
        }
        return statusOf(key, ins, verbose)
      })(),
    )
  }

  async sweep(key: string, dryRun: boolean, verbose: boolean, wait?: GateWait): Promise<SweepReport> {
    this.checkOpen()
    checkKeyText(key)
    if (dryRun) {
      const status = await this.inspect(key, verbose, wait)
      const reclaimed = status.holders.filter((h) => h.state === 'dead').map((h) => (verbose && h.pid !== undefined ? { slot: h.slot, pid: h.pid } : { slot: h.slot }))
      return { key, dryRun, reclaimed, status }
    }
    return this.track(
      (async () => {
        const session = await this.holderOrThrow()
        let res: calls.SweepResult
        try {
          res = await calls.sweep(session, this.o.schema, key, this.expiredFor(key, this.now()), this.o.lockTimeoutMs)
        } catch (err) {
          return rethrow(err)
        }
        const status = await this.inspect(key, verbose)
        return { key, dryRun, reclaimed: res.reclaimed.map((r) => ({ slot: r.slot })), status }
      })(),
    )
  }

  private async holderOrThrow(): Promise<Session> {
    try {
      return await this.holder()
    } catch (err) {
      return rethrow(err)
    }
  }

  private listening(): Promise<Listener | null> {
    if (this.listener === null) {
      const opening = (async () => {
        await this.holder() // pooler detection and migration first
        if (this.pooled) return null
        let l: Listener | null = null
        const s = await this.openTuned('listener', () => {
          if (this.listener === opening) this.listener = null
          void l?.end()
        })
        l = new Listener(s)
        return l
      })()
      this.listener = opening
      opening.catch(() => {
        if (this.listener === opening) this.listener = null
      })
    }
    return this.listener
  }

  async watch(key: string, wake: WakeHint, onChange: () => void, place?: unknown): Promise<KeyWatch | null> {
    this.checkOpen()
    let listener: Listener | null
    try {
      listener = await this.listening()
    } catch {
      return null
    }
    if (listener === null) return null
    const watchRef: { current: KeyWatch | null } = { current: null }
    let unlisten: () => void
    try {
      // A covered waiter is woken otherwise (see `covered`): a NOTIFY would only wake it twice,
      // or wake every waiter of the key at once.
      unlisten = await listener.listen(this.o.schema, key, () => {
        if (!(watchRef.current?.covered ?? false)) onChange()
      })
    } catch {
      return null
    }
    // A queued waiter blocks on the place before its own (or, at the head, on a holder) and
    // needs no turnstile: the queue already orders the waiters.
    const pl = placeOf(key, place)
    const queued = pl === null ? null : { token: pl.token, weight: pl.weight }
    const waiter =
      this.o.witness === 'session' ? new SessionLockWaiter(() => this.openTuned('waiter', () => undefined), this.o.schema, key, onChange, queued) : null
    if (waiter) this.waiters.add(waiter)
    let open = true
    const w: KeyWatch = {
      get alive(): boolean {
        return open && listener.alive
      },
      get covered(): boolean {
        // Queued for the key's turnstile, a waiter is woken when it gets it; owning it, by the
        // release or death of the only hold, whose session lock it blocks on (a release NOTIFYs
        // too, but the unlock in the release already woke it). Expiry comes via recheckInMs.
        return open && listener.alive && waiter !== null && waiter.covered
      },
      update(next: WakeHint): void {
        const o = next.opaque as PgWake | undefined
        if (o?.key === key) waiter?.arm(o.holds, o.limit, o.ahead)
      },
      close: (): void => {
        if (!open) return
        open = false
        unlisten()
        if (waiter) {
          this.waiters.delete(waiter)
          void waiter.end()
        }
      },
    }
    watchRef.current = w
    w.update(wake)
    return w
  }

  /**
   * Gives a queue place up. Never fails for an outage: the place's session lock (its witness)
   * ended with the session, or (expiry only) the place stops being renewed.
   */
  async leave(key: string, place: unknown): Promise<void> {
    const p = placeOf(key, place)
    if (p === null || this.closed) return
    await this.track(
      (async () => {
        let session: Session
        try {
          session = await this.holder()
        } catch (err) {
          if (isOutage(err)) return
          return rethrow(err)
        }
        try {
          await calls.leave(session, this.o.schema, key, p.token, this.o.lockTimeoutMs)
        } catch (err) {
          if (isOutage(err) || !session.alive) return
          return rethrow(err)
        }
      })(),
    )
  }

  async prune(idleMs: number, dryRun: boolean): Promise<PruneReport> {
    this.checkOpen()
    return this.track(
      (async () => {
        const session = await this.holderOrThrow()
        try {
          const r = await calls.prune(session, this.o.schema, idleMs, dryRun, [], this.o.lockTimeoutMs)
          return { dryRun, removed: r.removed, kept: r.kept }
        } catch (err) {
          return rethrow(err)
        }
      })(),
    )
  }

  async listKeys(): Promise<string[]> {
    this.checkOpen()
    const session = await this.holderOrThrow()
    try {
      return (await calls.listKeys(session, this.o.schema)).map((k) => k.key)
    } catch (err) {
      return rethrow(err)
    }
  }

  /**
   * Ends the store: waits for calls in flight, releases the holds still open (as release()
   * would), closes every session. Idempotent; later calls reject with `store_closed`.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([...this.inFlight])
    for (const h of [...this.holds]) {
      const hold: Hold = { key: h.key, slot: -1, token: h.token, fence: 0, weight: 1, recovered: null, signal: h.lost.signal, held: () => !h.ended, handle: h }
      await this.release(hold).catch(() => false)
    }
    for (const w of this.waiters) await w.end()
    this.waiters.clear()
    const l = this.listener
    this.listener = null
    if (l) await l.then((x) => x?.end(), () => undefined)
    const s = this.holderSession
    this.holderSession = null
    if (s) await s.then((x) => x.end(), () => undefined)
  }
}

/** PostgreSQL text cannot hold U+0000: such a key is refused here, not by the server. */
function checkKeyText(key: string): void {
  if (key.includes('\u0000')) throw new LeaseError('invalid_argument', 'a key on the PostgreSQL store must not contain U+0000')
}

function statusOf(key: string, ins: calls.Inspection, verbose: boolean): KeyStatus {
  const holders: HolderStatus[] = ins.holds.map((h) => {
    const out: HolderStatus = { slot: h.slot, state: h.state === 'unknown' ? 'unverifiable' : h.state, weight: h.weight }
    if (verbose && h.verbose) {
      const v = h.verbose
      if (v.holder.pid !== undefined) out.pid = v.holder.pid
      if (v.holder.starttime !== undefined) out.starttime = v.holder.starttime
      out.argv0 = v.holder.argv0 ?? null
      if (v.holder.hostname !== undefined) out.hostname = v.holder.hostname
      if (v.acquiredAt) out.acquiredAt = v.acquiredAt.toISOString()
      out.fence = Number(h.fence)
      if (v.metadata) out.metadata = v.metadata as Record<string, string | number | boolean>
    }
    return out
  })
  holders.sort((a, b) => a.slot - b.slot)
  return { key, active: ins.active, used: ins.used, waiting: ins.waiting, holders }
}
