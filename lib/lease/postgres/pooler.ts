// A transaction-mode pooler (PgBouncer) hands one server session to many clients in turn, which
// breaks the session witness (a dead client's lock stays on the pooled session; another client's
// claim runs on the holder's session) and LISTEN. The sign: the backend pid the client was told
// at connect (BackendKeyData, which a pooler forges for its own cancel handling) is not the pid
// of the server process that answers queries.
import type { Queryable } from './queryable.js'

/** A connected client; node-postgres keeps BackendKeyData's pid in `processID` (not in its types). */
export type ProbedClient = Queryable & { readonly processID?: number | null }

export interface PoolerProbe {
  /** The connection does not lead straight to a server session: a pooler is between. */
  pooled: boolean
  /** The pid from BackendKeyData, null when the server (or pooler) sent none. */
  announcedPid: number | null
  /** `pg_backend_pid()` of the session that answered. */
  backendPid: number
}

/**
 * Compares the announced pid with `pg_backend_pid()`. Session-mode poolers are reported as
 * pooled too (they forge BackendKeyData as well); telling them apart is the user's declaration.
 */
export async function detectPooler(client: ProbedClient): Promise<PoolerProbe> {
  const announced = client.processID
  if (announced !== null && announced !== undefined && !Number.isSafeInteger(announced)) {
    throw new TypeError('client.processID is not an integer')
  }
  const res = await client.query('SELECT pg_backend_pid() AS pid')
  const row = res.rows[0] as { pid?: unknown } | undefined
  const backendPid = row?.pid
  if (typeof backendPid !== 'number' || !Number.isSafeInteger(backendPid)) throw new Error('pg_backend_pid() gave no integer')
  const announcedPid = announced ?? null
  return { pooled: announcedPid !== backendPid, announcedPid, backendPid }
}
