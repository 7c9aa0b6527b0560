// The store's server calls, one round trip each, with the rows checked into typed results.
// Errors raised by the server keep their SQLSTATE (`err.code`, see SQLSTATE in schema.ts); this
// module maps nothing: the store decides what an error means (contended, unavailable, ...).
import { createHash } from 'node:crypto'
import type { Queryable } from './queryable.js'
import { PostgresSchemaError, quoteSchema } from './schema.js'

/** A hold's session-level advisory lock: (class, object) in PostgreSQL's two-int4 key space. */
export interface LockKey {
  classId: number
  objectId: number
}

/** Identity recorded with a hold, shown only by verbose inspection. */
export interface HolderIdentity {
  pid?: number
  starttime?: string
  argv0?: string | null
  hostname?: string
  bootId?: string
  machineId?: string
  pidNamespace?: string
}

/** A hold the claimer itself has seen unrenewed, at this renew count, for a whole TTL. */
export interface ObservedExpiry {
  token: string
  renewCount: string
}

export interface ClaimCall {
  key: string
  limit: number
  ttlMs: number
  /** 'session': the session witness speaks for this hold; 'none': only expiry does (poolers). */
  witness: 'session' | 'none'
  expired?: readonly ObservedExpiry[]
  holder?: HolderIdentity
  metadata?: Record<string, string | number | boolean>
  /** Bounds every wait of the claim (the gate, a hold row being renewed). */
  lockTimeoutMs: number
  /** Share of the limit (default 1). */
  weight?: number
  /** Keep to the key's queue (default false: the queue is ignored). */
  fair?: boolean
  /** Take a place in the queue when busy (a fair waiting claim; default false). */
  queue?: boolean
  /** The place (token) a previous busy answer gave, or null. */
  place?: string | null
}

/** A place in the queue that no witness speaks for: the claimer observes its expiry. */
export interface ObservedPlace {
  token: string
  renewCount: string
  ttlMs: number
}

/** What a later holder learns of one removed on proof of its death (S12). */
export interface Notice {
  slot: number
  pid: number | null
  hostname: string | null
  argv0: string | null
  acquiredAt: string
  /** Exact decimal string. */
  fence: string
  weight: number
  metadata: Record<string, unknown>
}

/** What a waiter needs about a live hold: no holder identity. */
export interface BusyHold {
  token: string
  renewCount: string
  ttlMs: number
  witness: 'session' | 'none'
  /** True when blocking on `lock` would wake when the holder's session ends. */
  sessionWitness: boolean
  lock: LockKey
  /** The holder's backend pid (a wake hint: the waiter can watch pg_stat_activity). */
  backendPid: number
}

export type ClaimResult =
  | {
      outcome: 'granted'
      slot: number
      /** Exact decimal string, at most 2^53 - 1. */
      fence: string
      token: string
      lock: LockKey
      active: number
      used: number
      limit: number
      reclaimed: number
      recovered: Notice | null
    }
  | {
      outcome: 'busy'
      active: number
      used: number
      limit: number
      reclaimed: number
      holds: BusyHold[]
      /** Our place in the queue (kept or new), or null. */
      place: string | null
      /** The session lock of the live place just before ours, when a session witnesses it. */
      ahead: LockKey | null
      /** Places before ours that only their expiry can prove gone. */
      observed: ObservedPlace[]
    }

export type HoldState = 'alive' | 'dead' | 'unknown'

export interface InspectedHold {
  slot: number
  weight: number
  state: HoldState
  fence: string
  token: string
  renewCount: string
  ttlMs: number
  witness: 'session' | 'none'
  sessionWitness: boolean
  lock: LockKey
  sessionPid: number
  /** Verbose only (null otherwise). */
  verbose: {
    sessionStarted: Date | null
    holder: HolderIdentity
    metadata: Record<string, unknown> | null
    acquiredAt: Date | null
    renewedAt: Date | null
  } | null
}

export interface Inspection {
  key: string
  /** Holds not proven gone (alive + unknown): what a claim would count. */
  active: number
  /** Their weights' sum. */
  used: number
  /** Live places in the key's queue. */
  waiting: number
  dead: number
  holds: InspectedHold[]
}

const INT4_MAX = 2_147_483_647

/** The per-key NOTIFY channel, as the server's `<schema>.channel(key)` computes it. */
export function channelFor(schema: string, key: string): string {
  quoteSchema(schema)
  return `proclease_${createHash('sha256').update(`${schema}\u001f${key}`, 'utf8').digest('hex').slice(0, 40)}`
}

function invalid(message: string): PostgresSchemaError {
  return new PostgresSchemaError('invalid_argument', message)
}

// PostgreSQL text cannot hold U+0000; the caller's key check must have refused it already.
function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 256 || key.includes('\u0000')) {
    throw invalid('key must be 1..256 characters without U+0000')
  }
}

function checkPositiveInt4(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1 || v > INT4_MAX) throw invalid(`${name} must be an integer in 1..${INT4_MAX}`)
}

// ---- row readers: every field checked ---------------------------------------------------------

type Row = Record<string, unknown>

function onlyRow(rows: unknown[], what: string): Row {
  const row = rows[0]
  if (rows.length !== 1 || typeof row !== 'object' || row === null) throw new Error(`${what}: expected one row, got ${rows.length}`)
  return row as Row
}

function int(row: Row, field: string): number {
  const v = row[field]
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`server row: ${field} is not an integer`)
  return v
}

function decimal(row: Row, field: string): string {
  const v = row[field]
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw new Error(`server row: ${field} is not a decimal string`)
  return v
}

function str(row: Row, field: string): string {
  const v = row[field]
  if (typeof v !== 'string') throw new Error(`server row: ${field} is not a string`)
  return v
}

function bool(row: Row, field: string): boolean {
  const v = row[field]
  if (typeof v !== 'boolean') throw new Error(`server row: ${field} is not a boolean`)
  return v
}

function optStr(row: Row, field: string): string | undefined {
  const v = row[field]
  if (v === null || v === undefined) return undefined
  if (typeof v !== 'string') throw new Error(`server row: ${field} is not a string`)
  return v
}

function optDate(row: Row, field: string): Date | null {
  const v = row[field]
  if (v === null || v === undefined) return null
  if (!(v instanceof Date)) throw new Error(`server row: ${field} is not a timestamp`)
  return v
}

function witnessOf(row: Row, field: string): 'session' | 'none' {
  const v = row[field]
  if (v !== 'session' && v !== 'none') throw new Error(`server row: ${field} is not a witness mode`)
  return v
}

function busyHold(v: unknown): BusyHold {
  if (typeof v !== 'object' || v === null) throw new Error('server row: a busy hold is not an object')
  const r = v as Row
  return {
    token: str(r, 'token'),
    renewCount: decimal(r, 'renewCount'),
    ttlMs: int(r, 'ttlMs'),
    witness: witnessOf(r, 'witness'),
    sessionWitness: bool(r, 'sessionWitness'),
    lock: { classId: int(r, 'lockClass'), objectId: int(r, 'lockObject') },
    backendPid: int(r, 'backendPid'),
  }
}

function lockOf(v: unknown): LockKey | null {
  if (v === null || v === undefined) return null
  if (typeof v !== 'object') throw new Error('server row: a lock key is not an object')
  const r = v as Row
  return { classId: int(r, 'lockClass'), objectId: int(r, 'lockObject') }
}

function observedPlace(v: unknown): ObservedPlace {
  if (typeof v !== 'object' || v === null) throw new Error('server row: an observed place is not an object')
  const r = v as Row
  return { token: str(r, 'token'), renewCount: decimal(r, 'renewCount'), ttlMs: int(r, 'ttlMs') }
}

function optInt(r: Row, field: string): number | null {
  const v = r[field]
  if (v === null || v === undefined) return null
  return int(r, field)
}

function noticeOf(v: unknown): Notice | null {
  if (v === null || v === undefined) return null
  if (typeof v !== 'object') throw new Error('server row: a notice is not an object')
  const r = v as Row
  const metadata = r.metadata
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new Error('server row: notice metadata is not an object')
  return {
    slot: int(r, 'slot'),
    pid: optInt(r, 'pid'),
    hostname: optStr(r, 'hostname') ?? null,
    argv0: optStr(r, 'argv0') ?? null,
    acquiredAt: str(r, 'acquiredAt'),
    fence: decimal(r, 'fence'),
    weight: int(r, 'weight'),
    metadata: metadata as Record<string, unknown>,
  }
}

function expiredArrays(expired: readonly ObservedExpiry[] | undefined): [string[], string[]] {
  const tokens: string[] = []
  const counts: string[] = []
  for (const e of expired ?? []) {
    if (!/^\d+$/.test(e.renewCount)) throw invalid('renewCount must be a decimal string')
    tokens.push(e.token)
    counts.push(e.renewCount)
  }
  return [tokens, counts]
}

// ---- calls -------------------------------------------------------------------------------------

/** One claim: one statement, one round trip. Run it outside any explicit transaction. */
export async function claim(client: Queryable, schema: string, call: ClaimCall): Promise<ClaimResult> {
  const s = quoteSchema(schema)
  checkKey(call.key)
  // Slots are counted holds: a limit past int4 behaves like int4's maximum.
  if (!Number.isSafeInteger(call.limit) || call.limit < 1) throw invalid('limit must be a positive integer')
  const limit = Math.min(call.limit, INT4_MAX)
  checkPositiveInt4('ttlMs', call.ttlMs)
  checkPositiveInt4('lockTimeoutMs', call.lockTimeoutMs)
  if (call.witness !== 'session' && call.witness !== 'none') throw invalid("witness must be 'session' or 'none'")
  const weight = call.weight ?? 1
  if (!Number.isSafeInteger(weight) || weight < 1 || weight > limit) throw invalid('weight must be an integer in 1..limit')
  const [tokens, counts] = expiredArrays(call.expired)
  const res = await client.query(
    `SELECT * FROM ${s}.claim($1, $2, $3, $4, $5, $6::uuid[], $7::bigint[], $8::jsonb, $9::jsonb, $10, $11, $12, $13::uuid)`,
    [
    call.key,
    limit,
    weight,
    call.ttlMs,
    call.witness,
    tokens,
    counts,
    JSON.stringify(call.holder ?? {}),
    JSON.stringify(call.metadata ?? {}),
    call.lockTimeoutMs,
    call.fair ?? false,
    call.queue ?? false,
    call.place ?? null,
    ],
  )
  const row = onlyRow(res.rows, 'claim')
  const outcome = row.outcome
  if (outcome === 'granted') {
    return {
      outcome,
      slot: int(row, 'slot'),
      fence: decimal(row, 'fence'),
      token: str(row, 'token'),
      lock: { classId: int(row, 'lock_class'), objectId: int(row, 'lock_object') },
      active: int(row, 'active'),
      used: int(row, 'used'),
      limit: int(row, 'lim'),
      reclaimed: int(row, 'reclaimed'),
      recovered: noticeOf(row.recovered),
    }
  }
  if (outcome === 'busy') {
    const holds = row.holds
    const observed = row.observed
    if (!Array.isArray(holds)) throw new Error('server row: busy without holds')
    if (!Array.isArray(observed)) throw new Error('server row: busy without observed places')
    return {
      outcome,
      active: int(row, 'active'),
      used: int(row, 'used'),
      limit: int(row, 'lim'),
      reclaimed: int(row, 'reclaimed'),
      holds: holds.map(busyHold),
      place: optStr(row, 'place') ?? null,
      ahead: lockOf(row.ahead),
      observed: observed.map(observedPlace),
    }
  }
  throw new Error(`server row: unknown claim outcome ${String(outcome)}`)
}

export interface ReleaseResult {
  /** The hold was ours and is gone now. False: it was no longer ours (token mismatch or reclaimed). */
  released: boolean
  /** This session dropped the hold's advisory lock. */
  unlocked: boolean
}

/**
 * Token-checked release; NOTIFYs the key's channel when it removed the hold. `lock`: the hold's
 * lock key, so that a hold reclaimed under us still has its lock dropped on this session.
 */
export async function release(
  client: Queryable,
  schema: string,
  key: string,
  token: string,
  lock: LockKey | null,
  lockTimeoutMs: number,
): Promise<ReleaseResult> {
  const s = quoteSchema(schema)
  checkKey(key)
  checkPositiveInt4('lockTimeoutMs', lockTimeoutMs)
  const res = await client.query(`SELECT * FROM ${s}.release($1, $2::uuid, $3, $4, $5)`, [
    key,
    token,
    lock?.classId ?? null,
    lock?.objectId ?? null,
    lockTimeoutMs,
  ])
  const row = onlyRow(res.rows, 'release')
  return { released: bool(row, 'released'), unlocked: bool(row, 'unlocked') }
}

export type RenewResult = { outcome: 'renewed'; renewCount: string } | { outcome: 'lost' }

/** Bumps the hold's renew counter: observers tracking it start their TTL over. */
export async function renew(client: Queryable, schema: string, key: string, token: string, lockTimeoutMs: number): Promise<RenewResult> {
  const s = quoteSchema(schema)
  checkKey(key)
  checkPositiveInt4('lockTimeoutMs', lockTimeoutMs)
  const res = await client.query(`SELECT * FROM ${s}.renew($1, $2::uuid, $3)`, [key, token, lockTimeoutMs])
  const row = onlyRow(res.rows, 'renew')
  return bool(row, 'renewed') ? { outcome: 'renewed', renewCount: decimal(row, 'renew_count') } : { outcome: 'lost' }
}

/** Judges every hold of the key without changing anything. */
export async function inspect(
  client: Queryable,
  schema: string,
  key: string,
  opts: { expired?: readonly ObservedExpiry[]; verbose?: boolean } = {},
): Promise<Inspection> {
  const s = quoteSchema(schema)
  checkKey(key)
  const [tokens, counts] = expiredArrays(opts.expired)
  const verbose = opts.verbose === true
  const res = await client.query(`SELECT * FROM ${s}.inspect($1, $2::uuid[], $3::bigint[], $4)`, [key, tokens, counts, verbose])
  const w = await client.query(`SELECT ${s}.waiting($1, $2::uuid[], $3::bigint[]) AS n`, [key, tokens, counts])
  const waiting = int(onlyRow(w.rows, 'waiting'), 'n')
  const holds = res.rows.map((raw): InspectedHold => {
    const row = raw as Row
    const state = row.state
    if (state !== 'alive' && state !== 'dead' && state !== 'unknown') throw new Error('server row: unknown hold state')
    const holderPid = row.holder_pid
    if (holderPid !== null && (typeof holderPid !== 'number' || !Number.isSafeInteger(holderPid))) {
      throw new Error('server row: holder_pid is not an integer')
    }
    const metadata = row.metadata
    if (metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) throw new Error('server row: metadata is not an object')
    return {
      slot: int(row, 'slot'),
      weight: int(row, 'weight'),
      state,
      fence: decimal(row, 'fence'),
      token: str(row, 'token'),
      renewCount: decimal(row, 'renew_count'),
      ttlMs: int(row, 'ttl_ms'),
      witness: witnessOf(row, 'witness'),
      sessionWitness: bool(row, 'session_witness'),
      lock: { classId: int(row, 'lock_class'), objectId: int(row, 'lock_object') },
      sessionPid: int(row, 'session_pid'),
      verbose: verbose
        ? {
            sessionStarted: optDate(row, 'session_started'),
            holder: {
              ...(typeof holderPid === 'number' ? { pid: holderPid } : {}),
              ...defined('starttime', optStr(row, 'holder_starttime')),
              argv0: optStr(row, 'holder_argv0') ?? null,
              ...defined('hostname', optStr(row, 'hostname')),
              ...defined('bootId', optStr(row, 'boot_id')),
              ...defined('machineId', optStr(row, 'machine_id')),
              ...defined('pidNamespace', optStr(row, 'pid_namespace')),
            },
            metadata: metadata as Record<string, unknown> | null,
            acquiredAt: optDate(row, 'acquired_at'),
            renewedAt: optDate(row, 'renewed_at'),
          }
        : null,
    }
  })
  const live = holds.filter((h) => h.state !== 'dead')
  return { key, active: live.length, used: live.reduce((n, h) => n + h.weight, 0), waiting, dead: holds.length - live.length, holds }
}

function defined<K extends string>(name: K, v: string | undefined): Partial<Record<K, string>> {
  return v === undefined ? {} : ({ [name]: v } as Partial<Record<K, string>>)
}

export interface SweepResult {
  reclaimed: Array<{ slot: number; fence: string }>
  remaining: number
}

/** Removes exactly the holds a claim would reclaim now; inserts nothing. */
export async function sweep(
  client: Queryable,
  schema: string,
  key: string,
  expired: readonly ObservedExpiry[],
  lockTimeoutMs: number,
): Promise<SweepResult> {
  const s = quoteSchema(schema)
  checkKey(key)
  checkPositiveInt4('lockTimeoutMs', lockTimeoutMs)
  const [tokens, counts] = expiredArrays(expired)
  const res = await client.query(
    `SELECT reclaimed_slots, reclaimed_fences::text[] AS reclaimed_fences, remaining FROM ${s}.sweep($1, $2::uuid[], $3::bigint[], $4)`,
    [key, tokens, counts, lockTimeoutMs],
  )
  const row = onlyRow(res.rows, 'sweep')
  const slots = row.reclaimed_slots
  const fences = row.reclaimed_fences
  if (!Array.isArray(slots) || !Array.isArray(fences) || slots.length !== fences.length) throw new Error('server row: bad sweep arrays')
  const reclaimed = slots.map((slot: unknown, i: number) => {
    const fence: unknown = fences[i]
    if (typeof slot !== 'number' || typeof fence !== 'string') throw new Error('server row: bad sweep entry')
    return { slot, fence }
  })
  return { reclaimed, remaining: int(row, 'remaining') }
}

/** Gives a place up; false when it was gone already. NOTIFYs the key's channel when it removed it. */
export async function leave(client: Queryable, schema: string, key: string, place: string, lockTimeoutMs: number): Promise<boolean> {
  const s = quoteSchema(schema)
  checkKey(key)
  checkPositiveInt4('lockTimeoutMs', lockTimeoutMs)
  const res = await client.query(`SELECT ${s}.leave($1, $2::uuid, $3) AS left`, [key, place, lockTimeoutMs])
  return bool(onlyRow(res.rows, 'leave'), 'left')
}

export interface PruneResult {
  removed: string[]
  kept: number
}

/** Removes keys with no hold and no live place, idle for idleMs (server clock); dryRun removes nothing. */
export async function prune(
  client: Queryable,
  schema: string,
  idleMs: number,
  dryRun: boolean,
  expired: readonly ObservedExpiry[],
  lockTimeoutMs: number,
): Promise<PruneResult> {
  const s = quoteSchema(schema)
  if (typeof idleMs !== 'number' || Number.isNaN(idleMs) || idleMs < 0) throw invalid('idleMs must be a number >= 0')
  checkPositiveInt4('lockTimeoutMs', lockTimeoutMs)
  const [tokens, counts] = expiredArrays(expired)
  // Beyond a century nothing is idle enough; the server's interval arithmetic stays in range.
  const bounded = Math.min(idleMs, PRUNE_IDLE_MAX_MS)
  const res = await client.query(`SELECT * FROM ${s}.prune($1, $2, $3::uuid[], $4::bigint[], $5)`, [bounded, dryRun, tokens, counts, lockTimeoutMs])
  const row = onlyRow(res.rows, 'prune')
  const removed = row.removed
  if (!Array.isArray(removed) || !removed.every((k): k is string => typeof k === 'string')) throw new Error('server row: bad prune list')
  return { removed, kept: int(row, 'kept') }
}

const PRUNE_IDLE_MAX_MS = 100 * 365 * 24 * 3600 * 1000

/** Every key with a gate row and its stored (unjudged) hold count. */
export async function listKeys(client: Queryable, schema: string): Promise<Array<{ key: string; holds: number }>> {
  const s = quoteSchema(schema)
  const res = await client.query(`SELECT * FROM ${s}.list_keys()`)
  return res.rows.map((raw) => {
    const row = raw as Row
    return { key: str(row, 'key'), holds: int(row, 'holds') }
  })
}

/**
 * The class of a key's turnstile lock, in the two-int4 key space: below 10000 (PostgreSQL's
 * hand-assigned OIDs) and none of the catalog schemas' OIDs (11, 99, 2200), so never the OID of a
 * proclease schema, which is the class of every hold's lock (docs/postgres.md).
 */
export const TURNSTILE_LOCK_CLASS = 7070

/** The text hashed (server-side, hashtext) into a key's turnstile object id: schema and key. */
export function turnstileText(schema: string, key: string): string {
  quoteSchema(schema)
  return `${schema}\u001f${key}`
}

/** What a turnstile owner reads before blocking: the key's stored holds, unjudged, in slot order. */
export interface PeekedHold {
  sessionWitness: boolean
  lock: LockKey
}

/** The key's stored holds (a plain read: it waits for no row lock and changes nothing). */
export async function peekHolds(client: Queryable, schema: string, key: string): Promise<PeekedHold[]> {
  const s = quoteSchema(schema)
  const res = await client.query(
    `SELECT lock_class, lock_object, (witness = 'session' AND server_started = pg_postmaster_start_time()) AS session_witness
       FROM ${s}.holds WHERE key = $1 ORDER BY slot`,
    [key],
  )
  return res.rows.map((raw) => {
    const row = raw as Row
    return { sessionWitness: bool(row, 'session_witness'), lock: { classId: int(row, 'lock_class'), objectId: int(row, 'lock_object') } }
  })
}

/** What a queued waiter reads when the wait ahead of it returned (no claim, nothing changed). */
export interface QueuePeek {
  /** Our place is still in the queue. */
  mine: boolean
  /** The live place just before ours: its lock, and whether a session witnesses it. */
  ahead: { lock: LockKey; sessionWitness: boolean } | null
  /** Sum of the weights of the holds not proven gone. */
  used: number
  /** Those holds, in slot order. */
  holds: PeekedHold[]
}

/**
 * Judges (without changing anything) the places before ours and the key's holds, so that a
 * queued waiter woken by the place ahead of it can block again without a claim when its turn has
 * not come.
 */
export async function peekQueue(client: Queryable, schema: string, key: string, place: string): Promise<QueuePeek> {
  const s = quoteSchema(schema)
  const res = await client.query(
    `WITH mine AS (SELECT m.ticket FROM ${s}.places m WHERE m.key = $1 AND m.token = $2::uuid),
          live AS (SELECT h.slot, h.weight, h.lock_class, h.lock_object,
                          (h.witness = 'session' AND h.server_started = pg_postmaster_start_time()) AS session_witness
                     FROM ${s}.holds h WHERE h.key = $1 AND ${s}.verdict(h, '{}', '{}') <> 'dead')
     SELECT EXISTS (SELECT 1 FROM mine) AS mine,
            (SELECT jsonb_build_object('lockClass', p.lock_class, 'lockObject', p.lock_object,
                                       'sessionWitness', p.witness = 'session' AND p.server_started = pg_postmaster_start_time())
               FROM ${s}.places p
              WHERE p.key = $1 AND p.ticket < (SELECT ticket FROM mine) AND ${s}.place_verdict(p, '{}', '{}') <> 'dead'
              ORDER BY p.ticket DESC LIMIT 1) AS ahead,
            (SELECT coalesce(sum(l.weight), 0)::integer FROM live l) AS used,
            (SELECT coalesce(jsonb_agg(jsonb_build_object('lockClass', l.lock_class, 'lockObject', l.lock_object,
                                                          'sessionWitness', l.session_witness) ORDER BY l.slot), '[]'::jsonb)
               FROM live l) AS holds`,
    [key, place],
  )
  const row = onlyRow(res.rows, 'peekQueue')
  const holds = row.holds
  if (!Array.isArray(holds)) throw new Error('server row: peek without holds')
  const ahead = row.ahead
  let a: QueuePeek['ahead'] = null
  if (ahead !== null && ahead !== undefined) {
    if (typeof ahead !== 'object') throw new Error('server row: bad place ahead')
    const r = ahead as Row
    a = { lock: { classId: int(r, 'lockClass'), objectId: int(r, 'lockObject') }, sessionWitness: bool(r, 'sessionWitness') }
  }
  return {
    mine: bool(row, 'mine'),
    ahead: a,
    used: int(row, 'used'),
    holds: holds.map((h: unknown) => {
      if (typeof h !== 'object' || h === null) throw new Error('server row: bad peeked hold')
      const r = h as Row
      return { sessionWitness: bool(r, 'sessionWitness'), lock: { classId: int(r, 'lockClass'), objectId: int(r, 'lockObject') } }
    }),
  }
}
