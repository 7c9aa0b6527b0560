// Every node-postgres Client the store uses is opened here and owned by a Session: an `error`
// listener is on from connect to end (an unhandled one would kill the process), the session's
// own limits travel in its startup packet, and its socket keeps the process alive only while a
// query is in flight. A session that fails is dead for good: its owner learns it once.
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
  readonly connection?: { stream?: { ref?: () => void; unref?: () => void } }
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
  /** Sets the server's TCP keepalives of this session: it must not drop a silent holder before its TTL. */
  ttlMs: number
  purpose: string
  onDead: (err: Error) => void
}

export class Session implements Queryable {
  private inFlight = 0
  private dead = false
  private ended = false

  private constructor(
    readonly client: PgClient,
    private readonly onDead: (err: Error) => void,
  ) {}

  /** Connects a new session with its settings; rejects (and leaves nothing open) on failure. */
  static async open(s: SessionSettings): Promise<Session> {
    const Client = await loadPg()
    const ttlS = Math.max(1, Math.ceil(s.ttlMs / 1000))
    // The server gives up on a silent session only after idle + interval * count >= 2 TTLs, by
    // which time the holder has long aborted its lease.signal. idle_session_timeout = 0: an idle
    // holder's session (and with it the session witness) must never be closed by the server.
    const options = `-c idle_session_timeout=0 -c tcp_keepalives_idle=${ttlS} -c tcp_keepalives_interval=${Math.max(1, Math.ceil(ttlS / 3))} -c tcp_keepalives_count=3`
    const client = new Client({
      ...s.connection,
      options,
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
    session = new Session(client, s.onDead)
    session.idle()
    if (early.length > 0) session.die(early[0] as Error)
    return session
  }

  get alive(): boolean {
    return !this.dead && !this.ended
  }

  async query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> {
    if (!this.alive) throw Object.assign(new Error('Connection terminated: the session is gone'), { code: 'ECONNRESET' })
    this.inFlight++
    this.client.connection?.stream?.ref?.()
    try {
      return await this.client.query(text, values)
    } finally {
      this.inFlight--
      this.idle()
    }
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

  async end(): Promise<void> {
    if (this.ended) return
    this.ended = true
    // Referenced until the connection has closed: on an idle (unreferenced) socket, a process with
    // nothing else to do would exit before `end()` settles, and `await store.close()` never returns.
    this.client.connection?.stream?.ref?.()
    await this.client.end().catch(() => undefined)
  }
}
