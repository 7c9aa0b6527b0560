// Waking a waiter: LISTEN on the key's channel (a release NOTIFYs it) on one listening session per
// store, and, for fast crash recovery, blocking on a holder's session lock on a session of its own
// (`pg_advisory_xact_lock_shared` returns the moment the holder's session ends). Both are hints:
// the waiter's next claim judges again.
import type { LockKey, BusyHold } from './calls.js'
import { channelFor } from './calls.js'
import type { Session } from './session.js'

/** Bound on one blocking wait for a holder's session lock; the next busy answer blocks again. */
const BLOCK_STATEMENT_MS = 30_000

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

function sameLock(a: LockKey, b: LockKey): boolean {
  return a.classId === b.classId && a.objectId === b.objectId
}

/** Blocks on one holder's session lock at a time; calls back when the wait returns. */
export class SessionLockWaiter {
  private current: LockKey | null = null
  private ended = false

  constructor(
    private readonly open: () => Promise<Session>,
    private readonly onReturn: () => void,
  ) {}

  private session: Promise<Session> | null = null

  /** True while blocking on the lock of `hold`. */
  covers(hold: BusyHold): boolean {
    return this.current !== null && sameLock(this.current, hold.lock)
  }

  /** Starts blocking on `hold`'s session lock unless already doing so. */
  block(hold: BusyHold): void {
    if (this.ended || this.covers(hold) || this.current !== null) return
    const lock = hold.lock
    this.current = lock
    void this.wait(lock)
  }

  private async wait(lock: LockKey): Promise<void> {
    try {
      this.session ??= this.open().then(async (s) => {
        await s.query(`SELECT set_config('statement_timeout', $1, false)`, [String(BLOCK_STATEMENT_MS)])
        return s
      })
      const s = await this.session
      if (this.ended) return
      // Shared, and released when the statement ends: it never stands in a claimer's way for long.
      // The server ends the wait at BLOCK_STATEMENT_MS; this side waits that long plus a call's bound.
      await s.query('SELECT pg_advisory_xact_lock_shared($1::integer, $2::integer)', [lock.classId, lock.objectId], BLOCK_STATEMENT_MS + s.callTimeoutMs)
      if (!this.ended) this.onReturn()
    } catch {
      // A timeout or a lost session: the next busy answer blocks again (on a new session).
      const s = this.session
      this.session = null
      if (s) void s.then((x) => x.end(), () => undefined)
    } finally {
      if (this.current !== null && sameLock(this.current, lock)) this.current = null
    }
  }

  async end(): Promise<void> {
    this.ended = true
    const s = this.session
    this.session = null
    if (s) await s.then((x) => x.end(), () => undefined)
  }
}
