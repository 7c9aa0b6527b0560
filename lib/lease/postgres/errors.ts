// One place that says what a PostgreSQL or socket error means to the store: a claim outcome
// (contended, unavailable) or a LeaseError with a stable code. The original stays as `cause`.
import { LeaseError } from '../../errors.js'
import { PostgresSchemaError, SQLSTATE } from './schema.js'

/** SQLSTATE of an error from the server, if it has one. */
export function sqlState(err: unknown): string | null {
  if (!(err instanceof Error)) return null
  const e = err as { code?: unknown; syscall?: unknown; errno?: unknown }
  // A socket error's errno code can look like one (EPIPE, EBADF: five capitals).
  if (e.syscall !== undefined || typeof e.errno === 'number') return null
  return typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : null
}

/**
 * The server or the way to it is gone or refusing: connection failures (errno codes), classes 08
 * (connection exception) and 57 (operator intervention: shutdown, crash, cannot connect now),
 * 53 (insufficient resources: too many connections), and node-postgres' own "Connection
 * terminated" errors.
 */
export function isOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const state = sqlState(err)
  if (state !== null) return state.startsWith('08') || state.startsWith('57') || state.startsWith('53')
  const code = (err as NodeJS.ErrnoException).code
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true
  return /Connection terminated|Client was closed|Client has encountered a connection error|connection timeout|timeout expired/i.test(err.message)
}

export type CallOutcome = { kind: 'contended' } | { kind: 'retry'; reason: string } | { kind: 'unavailable'; reason: string; cause: unknown }

/** A failed claim as an answer, or null when it is a fault the caller must see. */
export function claimOutcome(err: unknown): CallOutcome | null {
  const state = sqlState(err)
  if (state === SQLSTATE.lockTimeout) return { kind: 'contended' }
  if (state === SQLSTATE.lockIdTaken) return { kind: 'retry', reason: 'lock_id_taken' }
  if (isOutage(err)) return { kind: 'unavailable', reason: state ?? ((err as NodeJS.ErrnoException).code ?? 'connection_lost'), cause: err }
  return null
}

/** The LeaseError a server error becomes when it is not an answer; null when it stays as it is. */
export function leaseErrorOf(err: unknown): LeaseError | null {
  if (err instanceof LeaseError) return err
  if (err instanceof PostgresSchemaError) {
    const code = err.code === 'invalid_argument' ? 'invalid_argument' : 'store_unsupported'
    return new LeaseError(code, err.message, { cause: err })
  }
  const state = sqlState(err)
  if (state === SQLSTATE.fenceExhausted) {
    return new LeaseError('fence_exhausted', 'the PostgreSQL fence sequence reached 2^53 - 1; fences must never repeat', { cause: err })
  }
  if (state === SQLSTATE.isolationRefused) {
    return new LeaseError(
      'store_unsupported',
      'the PostgreSQL session runs at an isolation level other than READ COMMITTED (default_transaction_isolation of the role or database?); proclease claims need READ COMMITTED',
      { cause: err },
    )
  }
  if (state === SQLSTATE.lockTimeout) {
    return new LeaseError('key_frozen', 'the key is held by another PostgreSQL transaction past the lock timeout', { cause: err })
  }
  if (isOutage(err)) return new LeaseError('store_unavailable', `the PostgreSQL server is unavailable (${err instanceof Error ? err.message : String(err)})`, { cause: err })
  return null
}

/** Rethrows err as its LeaseError when it has one. */
export function rethrow(err: unknown): never {
  throw leaseErrorOf(err) ?? err
}
