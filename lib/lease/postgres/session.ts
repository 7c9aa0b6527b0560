// Every node-postgres Client the store uses is opened here and owned by a Session: an `error`
// listener is on from connect to end (an unhandled one would kill the process), its server
// settings are applied by its owner once connected (holderSettings, after the pooler check), and
// its socket keeps the process alive only while a query is in flight. A session that fails is dead for good: its owner learns it once.
// Every call is bounded on this side too: a server that stops answering (paused, or a TCP peer
// gone silent) would otherwise leave the call, and everyone queued behind it on this session,
// waiting forever. A call that outlives its bound abandons the session: its socket is destroyed
// (so a late answer can grant nothing to nobody) and the session is dead.
import { LeaseError } from '../../errors.js'
import type { PostgresConnection } from './options.js'
import type { Queryable } from './queryable.js'

/** The parts of node-postgres' Client the store relies on. */
interface PgClient extends Queryable {
  connect(): Promise<void>
  end(): Promise<void>
  on(event: 'error', listener: (err: Error) => void): unknown
  on(event: 'end', listener: () => void): unknown
  on(event: 'notification', listener: (msg: { channel: string; payload?: string }) => void): unknown
  readonly processID?: number | null
  readonly connection?: { stream?: { ref?: () => void; unref?: () => void; destroy?: () => void } }
}

type PgClientConstructor = new (config: Record<string, unknown>) => PgClient

let pgLoad: Promise<PgClientConstructor> | null = null

/** node-postgres, loaded on first use: it is an optional peer dependency of proclease. */
export function loadPg(): Promise<PgClientConstructor> {
  pgLoad ??= import('pg').then(
    (mod: { default?: { Client?: unknown }; Client?: unknown }) => {
      const Client = mod.Client ?? mod.default?.Client
      if (typeof Client !== 'function') throw new Error('pg exports no Client')
      return Client as PgClientConstructor
    },
    (err: unknown) => {
      pgLoad = null
      throw new LeaseError('store_unsupported', "the PostgreSQL store needs the 'pg' package: npm install pg", { cause: err })
    },
  )
  return pgLoad
}

export interface SessionSettings {
  connection: { connectionString: string } | PostgresConnection
  /** Paces the client's own TCP keepalives and bounds connecting. */
  ttlMs: number
  purpose: string
  onDead: (err: Error) => void
  /** How long one call may go unanswered before the session is abandoned (ms). */
  callTimeoutMs: number
}

/**
 * The server settings of a holder session. The server gives up on a silent session only after
 * idle + interval * count >= 2 TTLs, by which time the holder has long aborted its lease.signal.
 * Keepalives run only while nothing is unacknowledged: when the link drops with an answer on its
 * way (a renewal's), TCP retransmits instead, for as long as tcp_user_timeout allows — which an
 * operator may have set low server-wide; the session sets it to the same two TTLs.
 * idle_session_timeout = 0: an idle holder's session (and with it the session witness) must
 * never be closed by the server. Set with set_config once the session is known to lead straight
 * to a server (or through a declared session pooler), never in the startup packet: PgBouncer
 * refuses a startup `options` parameter outright, so the store could not even say "pooler".
 */
export function holderSettings(ttlMs: number): Record<string, string> {
  const idleS = Math.max(1, Math.ceil(ttlMs / 1000))
  const intervalS = Math.max(1, Math.ceil(idleS / 3))
  const count = 3
  return {
    idle_session_timeout: '0',
    tcp_keepalives_idle: String(idleS),
    tcp_keepalives_interval: String(intervalS),
    tcp_keepalives_count: String(count),
    tcp_user_timeout: String((idleS + intervalS * count) * 1000),
  }
}

/** The error of a call the server did not answer in time: an outage (see errors.ts isOutage). */
export class UnansweredError extends Error {
  readonly code = 'ETIMEDOUT'
  constructor(ms: number) {
    super(`PostgreSQL did not answer within ${ms} ms; the session is abandoned (timeout expired)`)
    this.name = 'UnansweredError'
  }
}

export class Session implements Queryable {
  private inFlight = 0
  private dead = false
  private ended = false

  private constructor(
    readonly client: PgClient,
    private readonly onDead: (err: Error) => void,
    /** Default bound of one call. */
    readonly callTimeoutMs: number,
  ) {}

  /** Connects a new session with its settings; rejects (and leaves nothing open) on failure. */
  static async open(s: SessionSettings): Promise<Session> {
    const Client = await loadPg()
    const client = new Client({
      ...s.connection,
      application_name: `proclease ${s.purpose}`,
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, Math.floor(s.ttlMs / 3)),
      connectionTimeoutMillis: Math.max(5000, s.ttlMs),
    })
    let session: Session | null = null
    const early: Error[] = []
    client.on('error', (err) => {
      if (session) session.die(err)
      else early.push(err)
    })
    client.on('end', () => session?.die(new Error('Connection terminated')))
    try {
      await client.connect()
    } catch (err) {
      await client.end().catch(() => undefined)
      throw err
    }
    session = new Session(client, s.onDead, s.callTimeoutMs)
    session.idle()
    if (early.length > 0) session.die(early[0] as Error)
    return session
  }

  get alive(): boolean {
    return !this.dead && !this.ended
  }

  /** One call, answered within `timeoutMs` (default callTimeoutMs) or the session is abandoned. */
  async query(text: string, values?: unknown[], timeoutMs: number = this.callTimeoutMs): Promise<{ rows: unknown[] }> {
    if (!this.alive) throw Object.assign(new Error('Connection terminated: the session is gone'), { code: 'ECONNRESET' })
    this.inFlight++
    this.client.connection?.stream?.ref?.()
    let timer: NodeJS.Timeout | undefined
    try {
      const unanswered = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new UnansweredError(timeoutMs)
          this.abandon(err)
          reject(err)
        }, timeoutMs)
      })
      return await Promise.race([this.client.query(text, values), unanswered])
    } finally {
      clearTimeout(timer)
      this.inFlight--
      this.idle()
    }
  }

  /** Applies session-level server settings (name → value) in one round trip. */
  async apply(settings: Record<string, string>): Promise<void> {
    const names = Object.keys(settings)
    if (names.length === 0) return
    const calls = names.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`).join(', ')
    await this.query(`SELECT ${calls}`, names.flatMap((n) => [n, settings[n] as string]))
  }

  /** The same session with another bound per call (a migration may wait long on its locks). */
  bounded(timeoutMs: number): Queryable {
    return { query: (text, values) => this.query(text, values, timeoutMs) }
  }

  /**
   * Ends the session without a goodbye: for a session whose backend is blocked in a lock wait and
   * would read none. The server ends the backend when its wait returns and the answer cannot go out.
   */
  destroy(): void {
    if (this.ended) return
    this.ended = true
    this.client.connection?.stream?.destroy?.()
  }

  /** Gives the session up at once: dead to its owner, socket destroyed (no goodbye to wait for). */
  private abandon(err: Error): void {
    this.die(err)
    this.client.connection?.stream?.destroy?.()
  }

  /** A quiet session never keeps the process alive by itself. */
  private idle(): void {
    if (this.inFlight === 0) this.client.connection?.stream?.unref?.()
  }

  private die(err: Error): void {
    if (this.dead || this.ended) return
    this.dead = true
    this.onDead(err)
  }

  /**
   * Says goodbye and waits for the server to close; a server that does not (paused, partitioned)
   * gets its socket destroyed after callTimeoutMs: ending never hangs.
   */
  async end(): Promise<void> {
    if (this.ended) return
    this.ended = true
    // Held open until the goodbye is through (a caller awaiting end() must not see the process
    // exit first), but never longer than one call may take: a paused server never answers.
    this.client.connection?.stream?.ref?.()
    let timer: NodeJS.Timeout | undefined
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.client.connection?.stream?.destroy?.()
        resolve()
      }, this.callTimeoutMs)
    })
    try {
      await Promise.race([this.client.end().catch(() => undefined), bound])
    } finally {
      clearTimeout(timer)
    }
  }
}
