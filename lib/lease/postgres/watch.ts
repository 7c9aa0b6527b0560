// Waking a waiter: LISTEN on the key's channel (a release NOTIFYs it) on one listening session per
// store, and blocking on a holder's session lock on a session of its own
// (`pg_advisory_xact_lock_shared` returns the moment the holder releases or its session ends).
// One waiter per key blocks on the holder at a time, so a hand-off wakes one waiter, not all of
// them at once. A fair waiter has a place in the key's queue (a row, witnessed by a session lock):
// it blocks on the place just before its own, and only the head of the queue blocks on a holder;
// serving, leaving or dying frees a place's lock and wakes the one waiter behind it. A waiter
// without a place (fair: false) queues for the key's turnstile, a session-level advisory lock that
// PostgreSQL grants to its waiters in FIFO order, and only the turnstile's owner blocks on a
// holder. All of it is a hint: the waiter's next claim judges again.
import type { LockKey, BusyHold, PeekedHold } from './calls.js'
import { TURNSTILE_LOCK_CLASS, channelFor, peekHolds, peekQueue, turnstileText } from './calls.js'
import type { Session } from './session.js'

/** Bound on one blocking wait for a holder's session lock; the next busy answer blocks again. */
const BLOCK_STATEMENT_MS = 30_000

/** How often a waiter's backend, in a lock wait, checks that its client is still there. */
const CONNECTION_CHECK_MS = 1_000

/** One LISTEN session shared by every watch of a store. */
export class Listener {
  private readonly channels = new Map<string, Set<() => void>>()

  constructor(private readonly session: Session) {
    session.client.on('notification', (msg) => {
      for (const cb of this.channels.get(msg.channel) ?? []) cb()
    })
  }

  get alive(): boolean {
    return this.session.alive
  }

  /** Subscribes to the key's channel; resolves to the unsubscribe. */
  async listen(schema: string, key: string, cb: () => void): Promise<() => void> {
    const channel = channelFor(schema, key)
    let subs = this.channels.get(channel)
    if (!subs) {
      subs = new Set()
      this.channels.set(channel, subs)
      await this.session.query(`LISTEN "${channel}"`)
    }
    subs.add(cb)
    return () => {
      const s = this.channels.get(channel)
      if (!s) return
      s.delete(cb)
      if (s.size === 0) {
        this.channels.delete(channel)
        if (this.session.alive) void this.session.query(`UNLISTEN "${channel}"`).catch(() => undefined)
      }
    }
  }

  async end(): Promise<void> {
    this.channels.clear()
    await this.session.end()
  }
}

/** PostgreSQL's statement_timeout ended the statement: block again on the same session. */
function statementTimedOut(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '57014'
}

/** What to block on next: the first session-witnessed hold, and whether it is the only hold. */
interface Target {
  lock: LockKey
  /** Its release or death is then the only change that can free a slot (expiry aside). */
  coversAll: boolean
}

function targetOf(holds: ReadonlyArray<BusyHold | PeekedHold>): Target | null {
  const first = holds.find((h) => h.sessionWitness)
  if (!first) return null
  return { lock: first.lock, coversAll: holds.length === 1 }
}

/**
 * A waiter's own session: queues for the key's turnstile (unless `queued`: it has a place in the
 * key's queue), then (owning it) blocks on one holder's session lock — or, queued behind another
 * place, on that place's lock — at a time and calls back when that wait returns. The turnstile is
 * held until the waiter ends (its session ends with it, and so does a crashed waiter's).
 *   queued   — waiting for the turnstile: its wake is the turnstile (covered);
 *   peeking  — owns it, reading the key's holds to know whom to block on (covered);
 *   blocking — owns it, blocked on `current` (covered when that is the only hold);
 *   woken    — owns it, the callback ran and its claim is under way (covered: a wake now would
 *              be dropped by the engine anyway); the next busy answer says whom to block on;
 *   owning   — owns it, but that answer named no hold with a session lock: NOTIFY wakes it;
 *   idle     — not started, or its session failed: NOTIFY and polling wake it meanwhile.
 */
export class SessionLockWaiter {
  private phase: 'idle' | 'queued' | 'peeking' | 'blocking' | 'woken' | 'owning' = 'idle'
  private current: Target | null = null
  private next: ((t: Target) => void) | null = null
  private session: Session | null = null
  private ended = false

  constructor(
    private readonly open: () => Promise<Session>,
    private readonly schema: string,
    private readonly key: string,
    private readonly onReturn: () => void,
    /** The waiter's place in the key's queue, if it has one: no turnstile; the queue orders the waiters. */
    private readonly place: { token: string; weight: number } | null = null,
  ) {}

  private get queued(): boolean {
    return this.place !== null
  }

  private limit = 1

  /** Every change that could free a slot wakes this waiter (expiry aside, see recheckInMs). */
  get covered(): boolean {
    switch (this.phase) {
      case 'queued':
      case 'peeking':
      case 'woken':
        return true
      case 'blocking':
        return this.current?.coversAll ?? false
      default:
        return false
    }
  }

  /**
   * Follows the latest busy answer: starts queueing, or (woken owner) blocks on its first hold;
   * a queued waiter blocks on the place ahead of it (its only way forward) or, at the head, on a hold.
   */
  arm(holds: readonly BusyHold[], limit: number, ahead: LockKey | null = null): void {
    if (this.ended) return
    this.limit = limit
    const t: Target | null = this.queued && ahead !== null ? { lock: ahead, coversAll: true } : targetOf(holds)
    if (this.phase === 'idle') {
      if (this.queued) {
        // The lock wait is level-triggered: a place or hold gone before we block returns at once.
        this.phase = t === null ? 'owning' : 'blocking'
        this.current = t
        void this.runQueued(t)
        return
      }
      this.phase = 'queued'
      void this.run(limit)
      return
    }
    if (this.phase !== 'woken' && this.phase !== 'owning') return
    const resume = this.next
    if (t === null || resume === null) {
      this.phase = 'owning'
      return
    }
    this.next = null
    // Set now: the engine reads `covered` right after the busy answer that armed us.
    this.phase = 'blocking'
    this.current = t
    resume(t)
  }

  /**
   * The waiter's session, set up for blocking waits: each bounded by statement_timeout, and a
   * vanished client noticed by the server. Null when the waiter ended meanwhile.
   */
  private async openBlocking(): Promise<Session | null> {
    const s = await this.open()
    if (this.ended) {
      await s.end()
      return null
    }
    this.session = s
    // A backend in a lock wait notices a vanished client only with client_connection_check_interval
    // (PostgreSQL 14+): without it, a crashed waiter's backend would keep the turnstile (or its
    // place in the queue) until its wait returned.
    await s.query(
      `SELECT set_config('statement_timeout', $1, false),
              CASE WHEN current_setting('server_version_num')::integer >= 140000
                   THEN set_config('client_connection_check_interval', $2, false) END`,
      [String(BLOCK_STATEMENT_MS), String(CONNECTION_CHECK_MS)],
    )
    return s
  }

  private async run(limit: number): Promise<void> {
    try {
      const s = await this.openBlocking()
      if (s === null) return
      // The server ends each wait at BLOCK_STATEMENT_MS; this side waits that long plus a call's bound.
      const bound = BLOCK_STATEMENT_MS + s.callTimeoutMs
      for (;;) {
        if (this.ended) return
        try {
          await s.query('SELECT pg_advisory_lock($1::integer, hashtext($2))', [TURNSTILE_LOCK_CLASS, turnstileText(this.schema, this.key)], bound)
          break
        } catch (err) {
          if (!statementTimedOut(err)) throw err
        }
      }
      if (this.ended) return
      // Owner now. Whoever had the turnstile before was granted (its row is committed) or gave up.
      this.phase = 'peeking'
      const holds = await peekHolds(s, this.schema, this.key)
      await this.blockOn(s, holds.length >= limit ? targetOf(holds) : null, async () => null)
    } catch {
      // A lost session (or one that could not open): NOTIFY and polling wake this waiter
      // meanwhile, and the next busy answer queues again on a new session.
      this.reset()
    }
  }

  /** A queued waiter: no turnstile; blocks on what the busy answers name, one at a time. */
  private async runQueued(first: Target | null): Promise<void> {
    try {
      const s = await this.openBlocking()
      if (s === null) return
      // No target yet: wait (without calling back) for a busy answer that names one.
      const t =
        first ??
        (await new Promise<Target>((resolve) => {
          this.next = resolve
        }))
      // Whatever we waited for is gone. Only when our turn may have come does the engine claim:
      // a waiter whose predecessor was just served blocks again without a claim (one wake per
      // hand-off, as with the turnstile).
      await this.blockOn(s, t, () => this.nextInQueue(s))
    } catch {
      this.reset()
    }
  }

  /**
   * Blocks on each target in turn until the waiter ends; when a wait returns, `after` names the
   * next target, or null to call the engine back (and wait for its next busy answer).
   */
  private async blockOn(s: Session, first: Target | null, after: () => Promise<Target | null>): Promise<void> {
    // The server ends each wait at BLOCK_STATEMENT_MS; this side waits that long plus a call's bound.
    const bound = BLOCK_STATEMENT_MS + s.callTimeoutMs
    let t = first
    for (;;) {
      if (this.ended) return
      if (t === null) {
        t = await this.wake()
        continue
      }
      this.phase = 'blocking'
      this.current = t
      try {
        // Shared, and released when the statement ends: it never stands in a claimer's way for long.
        await s.query('SELECT pg_advisory_xact_lock_shared($1::integer, $2::integer)', [t.lock.classId, t.lock.objectId], bound)
      } catch (err) {
        if (!statementTimedOut(err)) throw err
        continue // still held after BLOCK_STATEMENT_MS: block again
      }
      t = await after()
    }
  }

  /** After a wait returned: what to block on next, or null when our turn may have come. */
  private async nextInQueue(s: Session): Promise<Target | null> {
    const place = this.place
    if (place === null) return null
    this.phase = 'peeking'
    const q = await peekQueue(s, this.schema, this.key, place.token)
    if (!q.mine) return null
    if (q.ahead !== null) return q.ahead.sessionWitness ? { lock: q.ahead.lock, coversAll: true } : null
    if (q.used + place.weight <= this.limit) return null
    return targetOf(q.holds)
  }

  /** Calls back and waits for the next busy answer to name a hold to block on. */
  private wake(): Promise<Target> {
    this.phase = 'woken'
    this.current = null
    const p = new Promise<Target>((resolve) => {
      this.next = resolve
    })
    this.onReturn()
    return p
  }

  private reset(): void {
    const s = this.session
    this.session = null
    this.phase = 'idle'
    this.current = null
    this.next = null
    if (s) void s.end()
  }

  /** Ends the session, and with it the turnstile (or this waiter's place in its queue). */
  async end(): Promise<void> {
    this.ended = true
    this.next = null
    const s = this.session
    this.session = null
    if (s === null) return
    // A backend blocked in a lock wait reads no goodbye: drop the socket instead of waiting.
    if (this.phase === 'queued' || this.phase === 'blocking') s.destroy()
    else await s.end()
  }
}
