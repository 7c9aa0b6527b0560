// The PostgreSQL store's server side: a dedicated schema (tables, fence sequence) and the
// server-side functions that make each claim, release, renew, inspection and sweep ONE round trip.
// The algorithm, the witnesses and the advisory-lock key space are described in docs/postgres.md;
// the numbered steps there match the comments in claimSql below.
import type { Queryable } from './queryable.js'

/** Bumped whenever the tables or function signatures change; migrate() upgrades older schemas. */
export const SCHEMA_VERSION = 1

export const DEFAULT_SCHEMA = 'proclease'

/** Fences stay exact JavaScript numbers: the sequence stops at 2^53 - 1. */
export const MAX_FENCE = '9007199254740991'

/**
 * Custom SQLSTATEs raised by the functions (class `PC`, unused by PostgreSQL). The TypeScript
 * store maps them; messages may change, codes do not.
 */
export const SQLSTATE = {
  /** The claim ran under an isolation level other than READ COMMITTED. */
  isolationRefused: 'PC001',
  /** The fence sequence is at 2^53 - 1: no fence can be granted any more (→ fence_exhausted). */
  fenceExhausted: 'PC002',
  /** An argument the TypeScript side should have refused reached the server. */
  invalidArgument: 'PC003',
  /** The new hold's advisory lock is held by someone else (a foreign lock on the same id): retry. */
  lockIdTaken: 'PC004',
  /** PostgreSQL's own: a wait hit lock_timeout (the gate or a hold row is held by another claim). */
  lockTimeout: '55P03',
} as const

/**
 * Advisory lock that serializes migrations of one schema across processes and hosts. It lives in
 * the two-int4 key space (class, hashtext(schema)); a collision with a foreign lock only delays a
 * migration, bounded by lock_timeout.
 */
export const MIGRATION_LOCK_CLASS = 0x70636c65 // 'pcle'

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

export type PostgresSchemaErrorCode =
  /** Bad schema name or argument. */
  | 'invalid_argument'
  /** The stored schema version is newer than this code: refuse rather than corrupt it. */
  | 'schema_too_new'
  /** The schema exists but its version table is missing or malformed. */
  | 'schema_corrupt'

export class PostgresSchemaError extends Error {
  readonly code: PostgresSchemaErrorCode
  constructor(code: PostgresSchemaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PostgresSchemaError'
    this.code = code
  }
}

/** Validates a schema name (`^[a-z_][a-z0-9_]{0,62}$`) and returns it double-quoted. */
export function quoteSchema(schema: string): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    throw new PostgresSchemaError('invalid_argument', `schema must match ${SCHEMA_NAME.source} and not start with pg_`)
  }
  return `"${schema}"`
}

/** Test-only variants of the functions, each breaking one rule, to prove the tests can fail. */
export type ClaimFault =
  /** Grants while active <= limit: one holder too many. */
  | 'overAdmit'
  /** Skips the per-key gate row. */
  | 'noGate'
  /** Scans holds with SKIP LOCKED: a hold being renewed (row locked) is not counted. */
  | 'skipLocked'
  /** Reclaims holds no witness can speak for (pre-restart, witness none) without expiry. */
  | 'reclaimOnSuspicion'
  /** Observed expiry matches the token only, not the renew count it was observed at. */
  | 'ignoreRenewCount'
  /** Forgets that the claimer's own session holds a lock (re-entrant: the try-lock succeeds). */
  | 'ownSessionDead'
  /** Accepts any isolation level. */
  | 'noIsolationCheck'
  /** Counts only holds below the limit (a lowered limit forgets the holds above it). */
  | 'countBelowLimit'
  /** Tests the wrong advisory lock (class and object swapped): every holder looks gone. */
  | 'wrongLockKey'
  /** Leaves synchronous_commit to the server: with it off, a crash forgets acknowledged grants. */
  | 'asyncCommit'
  /** Release deletes the key's lowest-slot hold, whoever's token it carries. */
  | 'releaseIgnoresToken'

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`
}

/** Tables and the sequence: version 1. */
function tablesSql(s: string): string {
  return `
CREATE TABLE ${s}.schema_version (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version integer NOT NULL
);
CREATE TABLE ${s}.migrations (
  version integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  backend_pid integer NOT NULL DEFAULT pg_backend_pid()
);
-- One row per key ever claimed: the gate every transition of the key locks first.
CREATE TABLE ${s}.gates (
  key text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 256),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- CACHE 1: no fence is handed out of order between sessions. After a crash the sequence jumps
-- ahead (WAL pre-logs values), never back.
CREATE SEQUENCE ${s}.fences AS bigint MINVALUE 1 MAXVALUE ${MAX_FENCE} START 1 CACHE 1 NO CYCLE;
CREATE TABLE ${s}.holds (
  key text NOT NULL,
  slot integer NOT NULL CHECK (slot >= 0),
  token uuid NOT NULL UNIQUE,
  fence bigint NOT NULL UNIQUE,
  -- The holder's session-level advisory lock, (class, object) in the two-int4 key space.
  lock_class integer NOT NULL,
  lock_object integer NOT NULL,
  witness text NOT NULL CHECK (witness IN ('session', 'none')),
  ttl_ms integer NOT NULL CHECK (ttl_ms > 0),
  renew_count bigint NOT NULL DEFAULT 0,
  -- pg_postmaster_start_time() when the hold was taken: the session witness speaks only for
  -- holds of the current server incarnation (compared for equality, so a clock step is harmless).
  server_started timestamptz NOT NULL,
  session_pid integer NOT NULL,
  session_started timestamptz,
  holder_pid integer,
  holder_starttime text,
  holder_argv0 text,
  hostname text,
  boot_id text,
  machine_id text,
  pid_namespace text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  acquired_at timestamptz NOT NULL,
  renewed_at timestamptz NOT NULL,
  PRIMARY KEY (key, slot)
);
`
}

/** Server-side functions (CREATE OR REPLACE): the same text for migrations and test variants. */
export function functionsSql(schema: string, faults: readonly ClaimFault[] = []): string {
  const s = quoteSchema(schema)
  const has = (f: ClaimFault): boolean => faults.includes(f)
  const common = `LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp`
  // Every write is durable before it is acknowledged, whatever the server's default: with
  // synchronous_commit off, a crash forgets commits others already saw, so fences would repeat
  // and a renew count could go back and come again (an observer would see no renewal).
  const durable = has('asyncCommit') ? '' : `PERFORM set_config('synchronous_commit', 'on', true);`
  return `
-- The per-key NOTIFY channel: any key (256 characters of any Unicode) maps to a short, valid
-- identifier; the schema is hashed in so two schemas never share channels.
CREATE OR REPLACE FUNCTION ${s}.channel(p_key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT 'proclease_' || substr(encode(sha256(convert_to(${literal(schema)} || chr(31) || p_key, 'UTF8')), 'hex'), 1, 40) $fn$;

-- Judges one hold: 'alive', 'dead' (proven gone) or 'unknown' (no witness can speak: occupied).
CREATE OR REPLACE FUNCTION ${s}.verdict(h ${s}.holds, p_expired_tokens uuid[], p_expired_counts bigint[])
RETURNS text ${common}
AS $fn$
BEGIN
  -- (b) Observed expiry: the claimer saw this hold unrenewed for a whole TTL at this renew count.
  IF p_expired_tokens IS NOT NULL AND EXISTS (
       SELECT 1 FROM unnest(p_expired_tokens, p_expired_counts) AS e(token, renew_count)
       WHERE e.token = h.token ${has('ignoreRenewCount') ? '' : 'AND e.renew_count = h.renew_count'}) THEN
    RETURN 'dead';
  END IF;
  -- (a) Session witness, only for holds of this server incarnation (after a restart every session
  -- lock is gone, whoever is alive).
  IF h.witness <> 'session' OR h.server_started <> pg_postmaster_start_time() THEN
    RETURN ${has('reclaimOnSuspicion') ? "'dead'" : "'unknown'"};
  END IF;
  ${
    has('ownSessionDead')
      ? ''
      : `-- Our own session's lock: the try-lock below would succeed (locks are re-entrant) and prove nothing.
  IF h.session_pid = pg_backend_pid() AND EXISTS (
       SELECT 1 FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.pid = h.session_pid AND l.granted AND l.objsubid = 2
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = (h.lock_class::bigint & 4294967295)::oid AND l.objid = (h.lock_object::bigint & 4294967295)::oid) THEN
    RETURN 'alive';
  END IF;`
  }
  -- Shared, so that judges and waiters blocked on the lock (also shared) never disturb each other;
  -- only the holder's exclusive session lock conflicts.
  IF pg_try_advisory_xact_lock_shared(${has('wrongLockKey') ? 'h.lock_object, h.lock_class' : 'h.lock_class, h.lock_object'}) THEN
    RETURN 'dead';
  END IF;
  RETURN 'alive';
END
$fn$;

-- A claim: one call, one round trip, one transaction. Steps as in docs/postgres.md.
CREATE OR REPLACE FUNCTION ${s}.claim(
  p_key text, p_limit integer, p_ttl_ms integer, p_witness text,
  p_expired_tokens uuid[], p_expired_counts bigint[],
  p_holder jsonb, p_metadata jsonb, p_lock_timeout_ms integer)
RETURNS TABLE (outcome text, slot integer, fence bigint, token uuid, lock_class integer, lock_object integer,
               active integer, lim integer, reclaimed integer, holds jsonb)
${common}
AS $fn$
DECLARE
  h ${s}.holds;
  v_verdict text;
  v_alive integer := 0;
  v_reclaimed integer := 0;
  v_slot integer := 0;
  v_busy jsonb := '[]'::jsonb;
  v_fence bigint;
  v_token uuid;
  v_class integer;
  v_object integer;
  v_now timestamptz;
BEGIN
  -- 0. Preconditions. Each statement below must see what the previous gate holder committed,
  -- which only READ COMMITTED gives (a fresh snapshot per statement).
  ${
    has('noIsolationCheck')
      ? ''
      : `IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'proclease: claims need READ COMMITTED isolation, not %', current_setting('transaction_isolation')
      USING ERRCODE = '${SQLSTATE.isolationRefused}';
  END IF;`
  }
  IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 256 OR p_limit IS NULL OR p_limit < 1
     OR p_ttl_ms IS NULL OR p_ttl_ms < 1 OR p_witness IS NULL OR p_witness NOT IN ('session', 'none')
     OR p_lock_timeout_ms IS NULL OR p_lock_timeout_ms < 1
     OR coalesce(cardinality(p_expired_tokens), 0) <> coalesce(cardinality(p_expired_counts), 0) THEN
    RAISE EXCEPTION 'proclease: invalid claim arguments' USING ERRCODE = '${SQLSTATE.invalidArgument}';
  END IF;
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}

  -- 1. The key's gate: its row, locked in its own statement (created on first use).
  ${
    has('noGate')
      ? ''
      : `PERFORM 1 FROM ${s}.gates g WHERE g.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO ${s}.gates (key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM ${s}.gates g WHERE g.key = p_key FOR UPDATE;
  END IF;`
  }

  -- 2. Lock every hold of the key, in slot order; a hold being renewed is waited for and counted.
  -- 3. Judge each with the two witnesses. 4. Delete the proven dead, count the rest (slots at or
  -- above a lowered limit count too), and find the lowest free slot below the limit.
  FOR h IN SELECT * FROM ${s}.holds x WHERE x.key = p_key ORDER BY x.slot FOR UPDATE${has('skipLocked') ? ' SKIP LOCKED' : ''} LOOP
    v_verdict := ${s}.verdict(h, p_expired_tokens, p_expired_counts);
    IF v_verdict = 'dead' THEN
      DELETE FROM ${s}.holds x WHERE x.key = p_key AND x.slot = h.slot;
      v_reclaimed := v_reclaimed + 1;
    ELSE
      ${has('countBelowLimit') ? 'IF h.slot < p_limit THEN v_alive := v_alive + 1; END IF;' : 'v_alive := v_alive + 1;'}
      IF h.slot = v_slot THEN v_slot := v_slot + 1; END IF;
      v_busy := v_busy || jsonb_build_object(
        'token', h.token, 'renewCount', h.renew_count::text, 'ttlMs', h.ttl_ms, 'witness', h.witness,
        'sessionWitness', h.witness = 'session' AND h.server_started = pg_postmaster_start_time(),
        'lockClass', h.lock_class, 'lockObject', h.lock_object, 'backendPid', h.session_pid);
    END IF;
  END LOOP;

  IF v_alive >= p_limit${has('overAdmit') ? ' + 1' : ''} THEN
    RETURN QUERY SELECT 'busy'::text, NULL::integer, NULL::bigint, NULL::uuid, NULL::integer, NULL::integer,
                        v_alive, p_limit, v_reclaimed, v_busy;
    RETURN;
  END IF;

  -- 4 (cont.). The fence; the sequence ends at 2^53 - 1.
  BEGIN
    v_fence := nextval(${literal(`${s}.fences`)});
  EXCEPTION WHEN sequence_generator_limit_exceeded THEN
    RAISE EXCEPTION 'proclease: the fence sequence is exhausted' USING ERRCODE = '${SQLSTATE.fenceExhausted}';
  END;
  -- Lock key: (OID of this schema, low 32 bits of the fence) in the two-int4 space; see docs.
  v_class := ${literal(schema)}::regnamespace::oid::bigint::bit(32)::integer;
  v_object := (v_fence & 4294967295)::bit(32)::integer;
  v_token := gen_random_uuid();
  v_now := clock_timestamp();
  INSERT INTO ${s}.holds (key, slot, token, fence, lock_class, lock_object, witness, ttl_ms, server_started,
                          session_pid, session_started, holder_pid, holder_starttime, holder_argv0, hostname,
                          boot_id, machine_id, pid_namespace, metadata, acquired_at, renewed_at)
  VALUES (p_key, v_slot, v_token, v_fence, v_class, v_object, p_witness, p_ttl_ms, pg_postmaster_start_time(),
          pg_backend_pid(), (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a),
          (p_holder->>'pid')::integer, p_holder->>'starttime', p_holder->>'argv0', p_holder->>'hostname',
          p_holder->>'bootId', p_holder->>'machineId', p_holder->>'pidNamespace',
          coalesce(p_metadata, '{}'::jsonb), v_now, v_now);

  -- Holds were freed beyond the one taken: wake other waiters.
  IF v_reclaimed > 0 AND v_alive + 1 < p_limit THEN
    PERFORM pg_notify(${s}.channel(p_key), 'reclaimed');
  END IF;

  -- 5. Last: the holder's session lock. It survives a rollback, so nothing that can fail may follow.
  IF p_witness = 'session' AND NOT pg_try_advisory_lock(v_class, v_object) THEN
    RAISE EXCEPTION 'proclease: advisory lock (%, %) is held by another session', v_class, v_object
      USING ERRCODE = '${SQLSTATE.lockIdTaken}';
  END IF;

  -- 6. Granted.
  RETURN QUERY SELECT 'granted'::text, v_slot, v_fence, v_token, v_class, v_object,
                      v_alive + 1, p_limit, v_reclaimed, NULL::jsonb;
END
$fn$;

-- Token-checked release. Unlocks the session lock when this is the holder's own session; also
-- drops the lock of a hold that was already gone when asked (p_lock_*), if this session holds it.
CREATE OR REPLACE FUNCTION ${s}.release(p_key text, p_token uuid, p_lock_class integer, p_lock_object integer,
                                        p_lock_timeout_ms integer)
RETURNS TABLE (released boolean, unlocked boolean)
${common}
AS $fn$
DECLARE
  v_class integer;
  v_object integer;
  v_session integer;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}
  DELETE FROM ${s}.holds x WHERE x.key = p_key AND ${
    has('releaseIgnoresToken')
      ? `x.slot = (SELECT min(y.slot) FROM ${s}.holds y WHERE y.key = p_key)`
      : 'x.token = p_token'
  }
    RETURNING x.lock_class, x.lock_object, x.session_pid INTO v_class, v_object, v_session;
  released := FOUND;
  -- Gone already (reclaimed under us): drop the lock only if no hold of this schema uses it,
  -- so that a wrong key or token never strips a live hold of its witness.
  IF NOT released AND NOT EXISTS (
       SELECT 1 FROM ${s}.holds x WHERE x.lock_class = p_lock_class AND x.lock_object = p_lock_object) THEN
    v_class := p_lock_class;
    v_object := p_lock_object;
    v_session := pg_backend_pid();
  END IF;
  unlocked := false;
  IF v_session = pg_backend_pid() AND v_class IS NOT NULL AND EXISTS (
       SELECT 1 FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 2
         AND l.mode = 'ExclusiveLock'
         AND l.classid = (v_class::bigint & 4294967295)::oid AND l.objid = (v_object::bigint & 4294967295)::oid) THEN
    unlocked := pg_advisory_unlock(v_class, v_object);
  END IF;
  IF released THEN
    PERFORM pg_notify(${s}.channel(p_key), 'released');
  END IF;
  RETURN NEXT;
END
$fn$;

-- Renew: bumps the renew counter observers watch. 'lost' when the hold is gone.
CREATE OR REPLACE FUNCTION ${s}.renew(p_key text, p_token uuid, p_lock_timeout_ms integer)
RETURNS TABLE (renewed boolean, renew_count bigint)
${common}
AS $fn$
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}
  UPDATE ${s}.holds x SET renew_count = x.renew_count + 1, renewed_at = clock_timestamp()
    WHERE x.key = p_key AND x.token = p_token
    RETURNING x.renew_count INTO renew_count;
  renewed := FOUND;
  RETURN NEXT;
END
$fn$;

-- Judges without changing anything (no gate, no delete): one row per hold.
CREATE OR REPLACE FUNCTION ${s}.inspect(p_key text, p_expired_tokens uuid[], p_expired_counts bigint[], p_verbose boolean)
RETURNS TABLE (slot integer, state text, fence bigint, token uuid, renew_count bigint, ttl_ms integer, witness text,
               session_witness boolean, lock_class integer, lock_object integer, session_pid integer,
               session_started timestamptz, holder_pid integer, holder_starttime text, holder_argv0 text,
               hostname text, boot_id text, machine_id text, pid_namespace text, metadata jsonb,
               acquired_at timestamptz, renewed_at timestamptz)
${common}
AS $fn$
DECLARE
  h ${s}.holds;
BEGIN
  FOR h IN SELECT * FROM ${s}.holds x WHERE x.key = p_key ORDER BY x.slot LOOP
    slot := h.slot;
    state := ${s}.verdict(h, p_expired_tokens, p_expired_counts);
    fence := h.fence;
    token := h.token;
    renew_count := h.renew_count;
    ttl_ms := h.ttl_ms;
    witness := h.witness;
    session_witness := h.witness = 'session' AND h.server_started = pg_postmaster_start_time();
    lock_class := h.lock_class;
    lock_object := h.lock_object;
    session_pid := h.session_pid;
    IF p_verbose THEN
      session_started := h.session_started;
      holder_pid := h.holder_pid;
      holder_starttime := h.holder_starttime;
      holder_argv0 := h.holder_argv0;
      hostname := h.hostname;
      boot_id := h.boot_id;
      machine_id := h.machine_id;
      pid_namespace := h.pid_namespace;
      metadata := h.metadata;
      acquired_at := h.acquired_at;
      renewed_at := h.renewed_at;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$fn$;

-- Removes exactly what a claim would (same gate, same verdict), inserts nothing.
CREATE OR REPLACE FUNCTION ${s}.sweep(p_key text, p_expired_tokens uuid[], p_expired_counts bigint[], p_lock_timeout_ms integer)
RETURNS TABLE (reclaimed_slots integer[], reclaimed_fences bigint[], remaining integer)
${common}
AS $fn$
DECLARE
  h ${s}.holds;
BEGIN
  ${
    has('noIsolationCheck')
      ? ''
      : `IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'proclease: sweeps need READ COMMITTED isolation, not %', current_setting('transaction_isolation')
      USING ERRCODE = '${SQLSTATE.isolationRefused}';
  END IF;`
  }
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}
  reclaimed_slots := '{}';
  reclaimed_fences := '{}';
  remaining := 0;
  -- No gate row: no claim ever committed a hold for this key.
  PERFORM 1 FROM ${s}.gates g WHERE g.key = p_key FOR UPDATE;
  IF FOUND THEN
    FOR h IN SELECT * FROM ${s}.holds x WHERE x.key = p_key ORDER BY x.slot FOR UPDATE LOOP
      IF ${s}.verdict(h, p_expired_tokens, p_expired_counts) = 'dead' THEN
        DELETE FROM ${s}.holds x WHERE x.key = p_key AND x.slot = h.slot;
        reclaimed_slots := reclaimed_slots || h.slot;
        reclaimed_fences := reclaimed_fences || h.fence;
      ELSE
        remaining := remaining + 1;
      END IF;
    END LOOP;
    IF cardinality(reclaimed_slots) > 0 THEN
      PERFORM pg_notify(${s}.channel(p_key), 'reclaimed');
    END IF;
  END IF;
  RETURN NEXT;
END
$fn$;

-- Every key that has a gate row, with its stored hold count (not judged).
CREATE OR REPLACE FUNCTION ${s}.list_keys()
RETURNS TABLE (key text, holds integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT g.key, (SELECT count(*)::integer FROM ${s}.holds h WHERE h.key = g.key) FROM ${s}.gates g ORDER BY g.key
$fn$;
`
}

/** Steps from version n-1 to n, index n-1. Version 1 creates everything. */
function migrationSteps(schema: string): string[] {
  const s = quoteSchema(schema)
  return [tablesSql(s)]
}

interface VersionRow {
  version: unknown
}

async function storedVersion(client: Queryable, schema: string): Promise<number | null> {
  const s = quoteSchema(schema)
  // Not to_regclass(): it answers from the backend's catalog caches, which waiting on an advisory
  // lock does not refresh, so a migrator queued behind another still saw no schema after the first
  // committed it. A query over the catalogs locks them (processing pending invalidations) and
  // reads them with this statement's snapshot.
  const exists = await client.query(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $1 AND c.relname = 'schema_version') AS present`,
    [schema],
  )
  const present = (exists.rows[0] as { present?: unknown } | undefined)?.present
  if (present !== true) return null
  const res = await client.query(`SELECT version FROM ${s}.schema_version`)
  const row = res.rows[0] as VersionRow | undefined
  if (res.rows.length !== 1 || typeof row?.version !== 'number' || !Number.isSafeInteger(row.version)) {
    throw new PostgresSchemaError('schema_corrupt', `schema ${schema} has no valid version row`)
  }
  return row.version
}

function refuseNewer(schema: string, version: number): void {
  if (version > SCHEMA_VERSION) {
    throw new PostgresSchemaError(
      'schema_too_new',
      `schema ${schema} is at version ${version}, newer than this proclease (${SCHEMA_VERSION}); upgrade proclease`,
    )
  }
}

export interface MigrateOptions {
  /** Bounds the wait for a concurrent migration (ms). */
  lockTimeoutMs?: number
  /** Test seam: skip the advisory lock that serializes concurrent first uses. */
  unserialized?: boolean
}

/**
 * Creates the schema on first use, upgrades an older one, refuses a newer one. Idempotent and safe
 * when many processes call it at once: migrations of one schema are serialized by an advisory
 * transaction lock, and each re-reads the version under it. Leaves the client outside any
 * transaction. Needs a client not already inside a transaction.
 */
export async function migrate(client: Queryable, schema: string = DEFAULT_SCHEMA, options: MigrateOptions = {}): Promise<void> {
  const s = quoteSchema(schema)
  const lockTimeoutMs = options.lockTimeoutMs ?? 30_000
  if (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs < 1) {
    throw new PostgresSchemaError('invalid_argument', 'lockTimeoutMs must be a positive integer')
  }
  // Fast path: already current (one round trip, no lock).
  const seen = await storedVersion(client, schema)
  if (seen !== null) {
    refuseNewer(schema, seen)
    if (seen === SCHEMA_VERSION) return
  }
  await client.query('BEGIN')
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true), set_config('synchronous_commit', 'on', true)`, [`${lockTimeoutMs}ms`])
    if (!options.unserialized) {
      await client.query(`SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, [MIGRATION_LOCK_CLASS, schema])
    }
    const current = await storedVersion(client, schema)
    if (current !== null) refuseNewer(schema, current)
    const from = current ?? 0
    if (from < SCHEMA_VERSION) {
      if (current === null) await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`)
      const steps = migrationSteps(schema)
      for (let v = from + 1; v <= SCHEMA_VERSION; v++) {
        const step = steps[v - 1]
        if (step === undefined) throw new Error(`no migration step to version ${v}`)
        await client.query(step)
        await client.query(`INSERT INTO ${s}.migrations (version) VALUES ($1)`, [v])
      }
      await client.query(functionsSql(schema))
      await client.query(
        `INSERT INTO ${s}.schema_version (singleton, version) VALUES (true, $1)
         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`,
        [SCHEMA_VERSION],
      )
    }
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      throw new AggregateError([err, rollbackErr], 'migration failed and so did its rollback')
    })
    throw err
  }
}
