// Options of postgresStore(), checked into `invalid_argument` before anything connects.
import { LeaseError } from '../../errors.js'
import { checkOptionNames } from '../options.js'
import { DEFAULT_SCHEMA, quoteSchema } from './schema.js'

/** Connection settings when not given as a connection string (node-postgres' names). */
export interface PostgresConnection {
  host?: string
  port?: number
  user?: string
  password?: string | (() => string | Promise<string>)
  database?: string
  /** Passed to node-postgres as is (e.g. `{ rejectUnauthorized: true, ca }`). */
  ssl?: boolean | Record<string, unknown>
  application_name?: string
}

export interface PostgresStoreOptions {
  /** `postgres://user@host:5432/db` or `postgresql:///db?host=/run/postgresql`. */
  connectionString?: string
  /** Or the parts of a connection. Exclusive with connectionString. */
  connection?: PostgresConnection
  /** The dedicated schema holding proclease's tables and functions. Default 'proclease'. */
  schema?: string
  /**
   * How long a hold lives without a heartbeat (ms). Holders renew every ttl/3; a holder that stops
   * renewing (paused, partitioned) learns it lost the hold before anyone can reclaim it. Default 15000.
   */
  ttlMs?: number
  /**
   * 'session' (default): a hold is also witnessed by its holder's session advisory lock, so a
   * crashed holder's slot frees in milliseconds. 'none': expiry only (through a transaction-mode
   * pooler, which breaks session locks).
   */
  witness?: 'session' | 'none'
  /** Create or upgrade the schema on first use (default true). */
  migrate?: boolean
  /**
   * 'session' declares a session-mode pooler between us and the server: each client keeps its own
   * server session, so session locks work although the pooler forges backend ids. Default 'none':
   * a pooler detected in front of a 'session' witness is refused.
   */
  pooler?: 'none' | 'session'
  /** Bound on any wait inside one server call (a gate another claim holds). Default min(2000, ttl/4). */
  lockTimeoutMs?: number
}

export interface NormalizedPostgresOptions {
  connection: { connectionString: string } | PostgresConnection
  schema: string
  ttlMs: number
  witness: 'session' | 'none'
  migrate: boolean
  pooler: 'none' | 'session'
  lockTimeoutMs: number
  /**
   * Derived, not an option: how long one server call may go unanswered before its session is
   * abandoned as unreachable — the longest a healthy call waits on locks, plus half a TTL. A
   * holder's renewal is sent at least ttl/3 after the previous one, so its local deadline (ttl
   * less a fifth) always passes first: a holder learns 'expired' before 'connection_lost'.
   */
  callTimeoutMs: number
}

const NAMES = ['connectionString', 'connection', 'schema', 'ttlMs', 'witness', 'migrate', 'pooler', 'lockTimeoutMs'] as const
const CONNECTION_NAMES = ['host', 'port', 'user', 'password', 'database', 'ssl', 'application_name'] as const
export const MIN_TTL_MS = 1000
const MAX_INT4 = 2_147_483_647

function invalid(message: string): LeaseError {
  return new LeaseError('invalid_argument', `postgresStore: ${message}`)
}

function positiveInt(v: unknown, name: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > MAX_INT4) {
    throw invalid(`${name} must be a whole number of milliseconds in ${min}..${MAX_INT4}`)
  }
  return v
}

export function normalizePostgresOptions(opts: PostgresStoreOptions): NormalizedPostgresOptions {
  if (opts === null || typeof opts !== 'object') throw invalid('options must be an object')
  checkOptionNames(opts, NAMES, 'postgresStore')
  let connection: NormalizedPostgresOptions['connection']
  if (opts.connectionString !== undefined) {
    if (opts.connection !== undefined) throw invalid('connectionString and connection are exclusive')
    if (typeof opts.connectionString !== 'string' || opts.connectionString.length === 0) throw invalid('connectionString must be a non-empty string')
    connection = { connectionString: opts.connectionString }
  } else if (opts.connection !== undefined) {
    if (opts.connection === null || typeof opts.connection !== 'object') throw invalid('connection must be an object')
    checkOptionNames(opts.connection, CONNECTION_NAMES, 'postgresStore connection')
    connection = { ...opts.connection }
  } else {
    throw invalid('give connectionString or connection')
  }
  let schema = DEFAULT_SCHEMA
  if (opts.schema !== undefined) {
    try {
      quoteSchema(opts.schema)
    } catch (err) {
      throw invalid(err instanceof Error ? err.message : String(err))
    }
    schema = opts.schema
  }
  const ttlMs = opts.ttlMs === undefined ? 15_000 : positiveInt(opts.ttlMs, 'ttlMs', MIN_TTL_MS)
  const witness = opts.witness ?? 'session'
  if (witness !== 'session' && witness !== 'none') throw invalid("witness must be 'session' or 'none'")
  if (opts.migrate !== undefined && typeof opts.migrate !== 'boolean') throw invalid('migrate must be a boolean')
  const pooler = opts.pooler ?? 'none'
  if (pooler !== 'none' && pooler !== 'session') throw invalid("pooler must be 'none' or 'session'")
  const lockTimeoutMs = opts.lockTimeoutMs === undefined ? Math.min(2000, Math.floor(ttlMs / 4)) : positiveInt(opts.lockTimeoutMs, 'lockTimeoutMs', 1)
  const callTimeoutMs = lockTimeoutMs + Math.ceil(ttlMs / 2)
  return { connection, schema, ttlMs, witness, migrate: opts.migrate !== false, pooler, lockTimeoutMs, callTimeoutMs }
}
