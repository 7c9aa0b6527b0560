// The PostgreSQL store's server side: a dedicated schema (tables, fence sequence) and the
// server-side functions that make each claim, release, renew, inspection and sweep ONE round trip.
// The algorithm, the witnesses and the advisory-lock key space are described in docs/postgres.md;
// the numbered steps there match the comments in claimSql below.
import type { Queryable } from './queryable.js'

/** Bumped whenever the tables or function signatures change; migrate() upgrades older schemas. */
export const SCHEMA_VERSION = 2

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
  /** Prune judges and deletes a key without locking its gate row (and pauses between the two). */
  | 'pruneIgnoresGate'
  /** Prune pauses (pg_sleep 0.3 s) between judging a key and deleting it: a window for a claim. */
  | 'prunePause'

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`
}

/**
 * Version 2 (issue 10): weighted holds, the key's queue of waiters (places), takeover notices and
 * the key's last activity (for prune). Functions whose signature changed are dropped here and
 * created again by functionsSql.
 */
function version2Sql(s: string): string {
  return `
ALTER TABLE ${s}.holds ADD COLUMN weight integer NOT NULL DEFAULT 1 CHECK (weight >= 1);
-- Last grant or queue entry, written under the gate (prune's idle time, on the server's clock).
ALTER TABLE ${s}.gates ADD COLUMN touched_at timestamptz NOT NULL DEFAULT clock_timestamp();
-- A waiter's place in its key's queue. The ticket comes from the fence sequence, so places are
-- ordered across sessions and a place's lock object never equals a live hold's. A place is
-- witnessed like a hold: its waiter's session lock (lock_class, lock_object), or observed expiry
-- of its renew count.
CREATE TABLE ${s}.places (
  ticket bigint PRIMARY KEY,
  key text NOT NULL,
  token uuid NOT NULL UNIQUE,
  weight integer NOT NULL CHECK (weight >= 1),
  lock_class integer NOT NULL,
  lock_object integer NOT NULL,
  witness text NOT NULL CHECK (witness IN ('session', 'none')),
  ttl_ms integer NOT NULL CHECK (ttl_ms > 0),
  renew_count bigint NOT NULL DEFAULT 0,
  server_started timestamptz NOT NULL,
  session_pid integer NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX places_key_ticket ON ${s}.places (key, ticket);
-- What a hold removed on proof of its holder's death leaves for the key's next grant (S12).
CREATE TABLE ${s}.notices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key text NOT NULL,
  slot integer NOT NULL,
  fence bigint NOT NULL,
  weight integer NOT NULL,
  holder_pid integer,
  holder_argv0 text,
  hostname text,
  metadata jsonb NOT NULL,
  acquired_at timestamptz NOT NULL,
  noted_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notices_key_id ON ${s}.notices (key, id);
-- Last release or leave of a key: written outside the gate (a release never waits for it).
CREATE TABLE ${s}.activity (
  key text PRIMARY KEY,
  at timestamptz NOT NULL
);
DROP FUNCTION IF EXISTS ${s}.claim(text, integer, integer, text, uuid[], bigint[], jsonb, jsonb, integer);
DROP FUNCTION IF EXISTS ${s}.inspect(text, uuid[], bigint[], boolean);
`
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

-- Judges one hold or place: 'alive', 'dead' (proven gone) or 'unknown' (no witness can speak:
-- occupied). Holds and places are judged alike (the same two witnesses).
CREATE OR REPLACE FUNCTION ${s}.judge(p_token uuid, p_renew_count bigint, p_witness text, p_server_started timestamptz,
                                      p_session_pid integer, p_lock_class integer, p_lock_object integer,
                                      p_expired_tokens uuid[], p_expired_counts bigint[])
RETURNS text ${common}
AS $fn$
BEGIN
  -- (b) Observed expiry: the claimer saw this hold unrenewed for a whole TTL at this renew count.
  IF p_expired_tokens IS NOT NULL AND EXISTS (
       SELECT 1 FROM unnest(p_expired_tokens, p_expired_counts) AS e(token, renew_count)
       WHERE e.token = p_token ${has('ignoreRenewCount') ? '' : 'AND e.renew_count = p_renew_count'}) THEN
    RETURN 'dead';
  END IF;
  -- (a) Session witness, only for holds of this server incarnation (after a restart every session
  -- lock is gone, whoever is alive).
  IF p_witness <> 'session' OR p_server_started <> pg_postmaster_start_time() THEN
    RETURN ${has('reclaimOnSuspicion') ? "'dead'" : "'unknown'"};
  END IF;
  ${
    has('ownSessionDead')
      ? ''
      : `-- Our own session's lock: the try-lock below would succeed (locks are re-entrant) and prove nothing.
  IF p_session_pid = pg_backend_pid() AND EXISTS (
       SELECT 1 FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.pid = p_session_pid AND l.granted AND l.objsubid = 2
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = (p_lock_class::bigint & 4294967295)::oid AND l.objid = (p_lock_object::bigint & 4294967295)::oid) THEN
    RETURN 'alive';
  END IF;`
  }
  -- Shared, so that judges and waiters blocked on the lock (also shared) never disturb each other;
  -- only the holder's exclusive session lock conflicts.
  IF pg_try_advisory_xact_lock_shared(${has('wrongLockKey') ? 'p_lock_object, p_lock_class' : 'p_lock_class, p_lock_object'}) THEN
    RETURN 'dead';
  END IF;
  RETURN 'alive';
END
$fn$;

-- A hold's verdict.
CREATE OR REPLACE FUNCTION ${s}.verdict(h ${s}.holds, p_expired_tokens uuid[], p_expired_counts bigint[])
RETURNS text ${common}
AS $fn$
BEGIN
  RETURN ${s}.judge(h.token, h.renew_count, h.witness, h.server_started, h.session_pid, h.lock_class, h.lock_object,
                    p_expired_tokens, p_expired_counts);
END
$fn$;

-- A place's verdict: its waiter is judged like a holder.
CREATE OR REPLACE FUNCTION ${s}.place_verdict(p ${s}.places, p_expired_tokens uuid[], p_expired_counts bigint[])
RETURNS text ${common}
AS $fn$
BEGIN
  RETURN ${s}.judge(p.token, p.renew_count, p.witness, p.server_started, p.session_pid, p.lock_class, p.lock_object,
                    p_expired_tokens, p_expired_counts);
END
$fn$;

-- The notice a hold removed on proof of its holder's death leaves for the key's next grant.
CREATE OR REPLACE FUNCTION ${s}.note_dead(h ${s}.holds)
RETURNS void ${common}
AS $fn$
BEGIN
  INSERT INTO ${s}.notices (key, slot, fence, weight, holder_pid, holder_argv0, hostname, metadata, acquired_at)
  VALUES (h.key, h.slot, h.fence, h.weight, h.holder_pid, h.holder_argv0, h.hostname, h.metadata, h.acquired_at);
END
$fn$;

-- A claim: one call, one round trip, one transaction. Steps as in docs/postgres.md.
-- p_fair: keep to the key's queue; p_queue: take a place when busy (a fair waiting claim);
-- p_place: the place a previous busy answer gave this acquire, or NULL.
CREATE OR REPLACE FUNCTION ${s}.claim(
  p_key text, p_limit integer, p_weight integer, p_ttl_ms integer, p_witness text,
  p_expired_tokens uuid[], p_expired_counts bigint[],
  p_holder jsonb, p_metadata jsonb, p_lock_timeout_ms integer,
  p_fair boolean, p_queue boolean, p_place uuid)
RETURNS TABLE (outcome text, slot integer, fence bigint, token uuid, lock_class integer, lock_object integer,
               active integer, used integer, lim integer, reclaimed integer, holds jsonb,
               place uuid, ahead jsonb, observed jsonb, recovered jsonb)
${common}
AS $fn$
DECLARE
  h ${s}.holds;
  p ${s}.places;
  v_mine ${s}.places;
  v_prev ${s}.places;
  v_verdict text;
  v_alive integer := 0;
  v_used bigint := 0;
  v_reclaimed integer := 0;
  v_slot integer := 0;
  v_busy jsonb := '[]'::jsonb;
  v_observed jsonb := '[]'::jsonb;
  v_waiting integer := 0;
  v_before integer := 0;
  v_found boolean := false;
  v_has_prev boolean := false;
  v_new_place boolean := false;
  v_place uuid;
  v_ahead jsonb;
  v_ticket bigint;
  v_recovered jsonb;
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
     OR p_weight IS NULL OR p_weight < 1 OR p_weight > p_limit
     OR p_ttl_ms IS NULL OR p_ttl_ms < 1 OR p_witness IS NULL OR p_witness NOT IN ('session', 'none')
     OR p_lock_timeout_ms IS NULL OR p_lock_timeout_ms < 1 OR p_fair IS NULL OR p_queue IS NULL
     OR coalesce(cardinality(p_expired_tokens), 0) <> coalesce(cardinality(p_expired_counts), 0) THEN
    RAISE EXCEPTION 'proclease: invalid claim arguments' USING ERRCODE = '${SQLSTATE.invalidArgument}';
  END IF;
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}

  -- 1. The key's gate: its row, locked in its own statement (created on first use, or again
  -- after a prune removed it).
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
  -- 3. Judge each with the two witnesses. 4. Delete the proven dead (each leaves a notice), count
  -- the rest and their weights (slots at or above a lowered limit count too), and find the
  -- lowest free slot below the limit.
  FOR h IN SELECT * FROM ${s}.holds x WHERE x.key = p_key ORDER BY x.slot FOR UPDATE${has('skipLocked') ? ' SKIP LOCKED' : ''} LOOP
    v_verdict := ${s}.verdict(h, p_expired_tokens, p_expired_counts);
    IF v_verdict = 'dead' THEN
      DELETE FROM ${s}.holds x WHERE x.key = p_key AND x.slot = h.slot;
      PERFORM ${s}.note_dead(h);
      v_reclaimed := v_reclaimed + 1;
    ELSE
      ${has('countBelowLimit') ? 'IF h.slot < p_limit THEN v_alive := v_alive + 1; v_used := v_used + h.weight; END IF;' : 'v_alive := v_alive + 1; v_used := v_used + h.weight;'}
      IF h.slot = v_slot THEN v_slot := v_slot + 1; END IF;
      v_busy := v_busy || jsonb_build_object(
        'token', h.token, 'renewCount', h.renew_count::text, 'ttlMs', h.ttl_ms, 'witness', h.witness,
        'sessionWitness', h.witness = 'session' AND h.server_started = pg_postmaster_start_time(),
        'lockClass', h.lock_class, 'lockObject', h.lock_object, 'backendPid', h.session_pid);
    END IF;
  END LOOP;

  -- 5. The queue (fair claims only): judge every place like a hold, delete the proven gone, find
  -- ours and the live places before it. Places whose waiter no witness speaks for are returned
  -- for the claimer to observe (their expiry, like a hold's).
  IF p_fair THEN
    FOR p IN SELECT * FROM ${s}.places x WHERE x.key = p_key ORDER BY x.ticket LOOP
      v_verdict := ${s}.place_verdict(p, p_expired_tokens, p_expired_counts);
      IF v_verdict = 'dead' THEN
        DELETE FROM ${s}.places x WHERE x.ticket = p.ticket;
        CONTINUE;
      END IF;
      v_waiting := v_waiting + 1;
      IF p_place IS NOT NULL AND p.token = p_place THEN
        v_mine := p;
        v_found := true;
      ELSIF NOT v_found THEN
        v_before := v_before + 1;
        v_prev := p;
        v_has_prev := true;
        IF v_verdict = 'unknown' THEN
          v_observed := v_observed || jsonb_build_object('token', p.token, 'renewCount', p.renew_count::text, 'ttlMs', p.ttl_ms);
        END IF;
      END IF;
    END LOOP;
  END IF;

  -- 6. Busy unless the weight fits and (fair) no live place comes first: a claim with a place
  -- waits for the places before it, one without waits for every place.
  IF v_used + p_weight > p_limit${has('overAdmit') ? ' + 1' : ''}
     OR (p_fair AND ((v_found AND v_before > 0) OR (NOT v_found AND v_waiting > 0))) THEN
    IF v_found THEN
      v_place := v_mine.token;
      -- A place no session witness speaks for stays only while its waiter keeps claiming.
      IF v_mine.witness <> 'session' THEN
        UPDATE ${s}.places x SET renew_count = x.renew_count + 1 WHERE x.ticket = v_mine.ticket;
      END IF;
    ELSIF p_fair AND p_queue THEN
      -- A new place at the end of the queue.
      BEGIN
        v_ticket := nextval(${literal(`${s}.fences`)});
      EXCEPTION WHEN sequence_generator_limit_exceeded THEN
        RAISE EXCEPTION 'proclease: the fence sequence is exhausted' USING ERRCODE = '${SQLSTATE.fenceExhausted}';
      END;
      v_class := ${literal(schema)}::regnamespace::oid::bigint::bit(32)::integer;
      v_object := (v_ticket & 4294967295)::bit(32)::integer;
      v_place := gen_random_uuid();
      INSERT INTO ${s}.places (ticket, key, token, weight, lock_class, lock_object, witness, ttl_ms, server_started,
                               session_pid, created_at)
      VALUES (v_ticket, p_key, v_place, p_weight, v_class, v_object, p_witness, p_ttl_ms, pg_postmaster_start_time(),
              pg_backend_pid(), clock_timestamp());
      UPDATE ${s}.gates g SET touched_at = clock_timestamp() WHERE g.key = p_key;
      v_new_place := true;
    END IF;
    -- The wake hint: the place just before ours, when its waiter's session lock witnesses it.
    IF v_place IS NOT NULL AND v_has_prev AND v_prev.witness = 'session' AND v_prev.server_started = pg_postmaster_start_time() THEN
      v_ahead := jsonb_build_object('lockClass', v_prev.lock_class, 'lockObject', v_prev.lock_object);
    END IF;
    -- A new place's session lock, last: it survives a rollback.
    IF v_new_place AND p_witness = 'session' AND NOT pg_try_advisory_lock(v_class, v_object) THEN
      RAISE EXCEPTION 'proclease: advisory lock (%, %) is held by another session', v_class, v_object
        USING ERRCODE = '${SQLSTATE.lockIdTaken}';
    END IF;
    RETURN QUERY SELECT 'busy'::text, NULL::integer, NULL::bigint, NULL::uuid, NULL::integer, NULL::integer,
                        v_alive, v_used::integer, p_limit, v_reclaimed, v_busy, v_place, v_ahead, v_observed, NULL::jsonb;
    RETURN;
  END IF;

  -- 7. The fence; the sequence ends at 2^53 - 1.
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
                          boot_id, machine_id, pid_namespace, metadata, acquired_at, renewed_at, weight)
  VALUES (p_key, v_slot, v_token, v_fence, v_class, v_object, p_witness, p_ttl_ms, pg_postmaster_start_time(),
          pg_backend_pid(), (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a),
          (p_holder->>'pid')::integer, p_holder->>'starttime', p_holder->>'argv0', p_holder->>'hostname',
          p_holder->>'bootId', p_holder->>'machineId', p_holder->>'pidNamespace',
          coalesce(p_metadata, '{}'::jsonb), v_now, v_now, p_weight);

  -- 8. The oldest takeover notice of the key goes with this grant (under the gate: to one grant).
  DELETE FROM ${s}.notices n
   WHERE n.id = (SELECT m.id FROM ${s}.notices m WHERE m.key = p_key ORDER BY m.id LIMIT 1)
  RETURNING jsonb_build_object(
    'slot', n.slot, 'pid', n.holder_pid, 'hostname', n.hostname, 'argv0', n.holder_argv0,
    'acquiredAt', to_char(n.acquired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'fence', n.fence::text, 'weight', n.weight, 'metadata', n.metadata) INTO v_recovered;

  -- Our place, served.
  IF v_found THEN
    DELETE FROM ${s}.places x WHERE x.ticket = v_mine.ticket;
  END IF;
  UPDATE ${s}.gates g SET touched_at = v_now WHERE g.key = p_key;

  -- Holds were freed, or the queue moved, with capacity left: wake other waiters.
  IF (v_reclaimed > 0 OR v_found) AND v_used + p_weight < p_limit THEN
    PERFORM pg_notify(${s}.channel(p_key), 'reclaimed');
  END IF;

  -- 9. Last: the holder's session lock. It survives a rollback, so nothing that can fail may follow.
  IF p_witness = 'session' AND NOT pg_try_advisory_lock(v_class, v_object) THEN
    RAISE EXCEPTION 'proclease: advisory lock (%, %) is held by another session', v_class, v_object
      USING ERRCODE = '${SQLSTATE.lockIdTaken}';
  END IF;
  -- Our place's lock, after everything that can fail: unlocking it wakes the waiter behind us.
  IF v_found AND v_mine.witness = 'session' AND v_mine.session_pid = pg_backend_pid() THEN
    PERFORM pg_advisory_unlock(v_mine.lock_class, v_mine.lock_object);
  END IF;

  -- 10. Granted.
  RETURN QUERY SELECT 'granted'::text, v_slot, v_fence, v_token, v_class, v_object,
                      v_alive + 1, (v_used + p_weight)::integer, p_limit, v_reclaimed, NULL::jsonb,
                      NULL::uuid, NULL::jsonb, NULL::jsonb, v_recovered;
END
$fn$;

-- Gives a place up (an acquire ended unserved): deletes it, drops its session lock when this
-- session holds it (which wakes the waiter behind it), and NOTIFYs the key.
CREATE OR REPLACE FUNCTION ${s}.leave(p_key text, p_place uuid, p_lock_timeout_ms integer)
RETURNS boolean
${common}
AS $fn$
DECLARE
  v_place ${s}.places;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}
  DELETE FROM ${s}.places x WHERE x.key = p_key AND x.token = p_place RETURNING x.* INTO v_place;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO ${s}.activity AS a (key, at) VALUES (p_key, clock_timestamp())
    ON CONFLICT ON CONSTRAINT activity_pkey DO UPDATE SET at = EXCLUDED.at;
  IF v_place.witness = 'session' AND v_place.session_pid = pg_backend_pid() AND EXISTS (
       SELECT 1 FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 2
         AND l.mode = 'ExclusiveLock'
         AND l.classid = (v_place.lock_class::bigint & 4294967295)::oid AND l.objid = (v_place.lock_object::bigint & 4294967295)::oid) THEN
    PERFORM pg_advisory_unlock(v_place.lock_class, v_place.lock_object);
  END IF;
  PERFORM pg_notify(${s}.channel(p_key), 'left');
  RETURN true;
END
$fn$;

-- Live places of a key (judged, nothing changed): what status shows as waiting.
CREATE OR REPLACE FUNCTION ${s}.waiting(p_key text, p_expired_tokens uuid[], p_expired_counts bigint[])
RETURNS integer ${common}
AS $fn$
BEGIN
  RETURN (SELECT count(*)::integer FROM ${s}.places x
           WHERE x.key = p_key AND ${s}.place_verdict(x, p_expired_tokens, p_expired_counts) <> 'dead');
END
$fn$;

-- Removes keys with no hold and no live place, idle for p_idle_ms on the server's clock: their
-- gate, places, notices and activity rows. A key whose gate a claim holds is skipped (in use).
-- Fences come from the schema's sequence, which this never touches: they never go back.
CREATE OR REPLACE FUNCTION ${s}.prune(p_idle_ms double precision, p_dry_run boolean,
                                      p_expired_tokens uuid[], p_expired_counts bigint[], p_lock_timeout_ms integer)
RETURNS TABLE (removed text[], kept integer)
${common}
AS $fn$
DECLARE
  g ${s}.gates;
  v_total integer;
  v_cut timestamptz;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  ${durable}
  removed := '{}';
  v_cut := clock_timestamp() - make_interval(secs => p_idle_ms / 1000.0);
  SELECT count(*)::integer INTO v_total FROM ${s}.gates;
  FOR g IN SELECT * FROM ${s}.gates x ORDER BY x.key${has('pruneIgnoresGate') ? '' : ' FOR UPDATE SKIP LOCKED'} LOOP
    -- Holds first, then activity: a release committing in between is seen one way or the other.
    CONTINUE WHEN g.touched_at > v_cut;
    CONTINUE WHEN EXISTS (SELECT 1 FROM ${s}.holds h WHERE h.key = g.key);
    CONTINUE WHEN EXISTS (SELECT 1 FROM ${s}.activity a WHERE a.key = g.key AND a.at > v_cut);
    CONTINUE WHEN EXISTS (SELECT 1 FROM ${s}.places x WHERE x.key = g.key
                           AND ${s}.place_verdict(x, p_expired_tokens, p_expired_counts) <> 'dead');
    ${has('pruneIgnoresGate') || has('prunePause') ? 'PERFORM pg_sleep(0.3);' : ''}
    removed := removed || g.key;
    IF NOT p_dry_run THEN
      DELETE FROM ${s}.places x WHERE x.key = g.key;
      DELETE FROM ${s}.notices n WHERE n.key = g.key;
      DELETE FROM ${s}.activity a WHERE a.key = g.key;
      DELETE FROM ${s}.gates x WHERE x.key = g.key;
    END IF;
  END LOOP;
  kept := v_total - cardinality(removed);
  RETURN NEXT;
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
    INSERT INTO ${s}.activity AS a (key, at) VALUES (p_key, clock_timestamp())
      ON CONFLICT ON CONSTRAINT activity_pkey DO UPDATE SET at = EXCLUDED.at;
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
               acquired_at timestamptz, renewed_at timestamptz, weight integer)
${common}
AS $fn$
DECLARE
  h ${s}.holds;
BEGIN
  FOR h IN SELECT * FROM ${s}.holds x WHERE x.key = p_key ORDER BY x.slot LOOP
    slot := h.slot;
    weight := h.weight;
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
        PERFORM ${s}.note_dead(h);
        reclaimed_slots := reclaimed_slots || h.slot;
        reclaimed_fences := reclaimed_fences || h.fence;
      ELSE
        remaining := remaining + 1;
      END IF;
    END LOOP;
    DELETE FROM ${s}.places x WHERE x.key = p_key AND ${s}.place_verdict(x, p_expired_tokens, p_expired_counts) = 'dead';
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

/** Steps from version n-1 to n, index n-1. Version 1 creates the tables, later ones change them. */
function migrationSteps(schema: string): string[] {
  const s = quoteSchema(schema)
  return [tablesSql(s), version2Sql(s)]
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
  /**
   * Test seam: stop at this older version (its tables only: no functions are installed), to show
   * that an upgrade from it keeps what it stored.
   */
  toVersion?: number
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
  const target = options.toVersion ?? SCHEMA_VERSION
  if (!Number.isSafeInteger(target) || target < 1 || target > SCHEMA_VERSION) {
    throw new PostgresSchemaError('invalid_argument', `toVersion must be an integer in 1..${SCHEMA_VERSION}`)
  }
  const seen = await storedVersion(client, schema)
  if (seen !== null) {
    refuseNewer(schema, seen)
    if (seen >= target) return
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
    if (from < target) {
      if (current === null) await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`)
      const steps = migrationSteps(schema)
      for (let v = from + 1; v <= target; v++) {
        const step = steps[v - 1]
        if (step === undefined) throw new Error(`no migration step to version ${v}`)
        await client.query(step)
        await client.query(`INSERT INTO ${s}.migrations (version) VALUES ($1)`, [v])
      }
      if (target === SCHEMA_VERSION) await client.query(functionsSql(schema))
      await client.query(
        `INSERT INTO ${s}.schema_version (singleton, version) VALUES (true, $1)
         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`,
        [target],
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
