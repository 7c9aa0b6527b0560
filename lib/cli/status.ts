// `proclease status`: counts and per-slot states of one key or of every key under a lock root.
import { inspectLeases, listLeaseKeys, storeFor } from '../lease/api.js'
import { GATE_WAIT_MS } from '../lease/store.js'
import { defaultLockRoot } from '../lease/root.js'
import type { HolderStatus, KeyStatus, LeaseStore } from '../lease/store.js'
import { EXIT, type Io, formatDuration, heldText, noPositionals, optionalString, parse, parseWaitSeconds, writeJson, writeLine } from './common.js'
import { STORE_OPTIONS, type StoreChoice, chooseStore, describeStore, withStore, storeHelp } from './store.js'

export const STATUS_HELP = `Usage: proclease status [--key K] [--root DIR | --store URL [--ttl SECONDS] [--schema NAME]]
                        [--wait SECONDS] [--json] [--verbose]

Show, for one key (or every key used under the lock root), how many slots are
held and the state of each: alive, dead (proven gone, reclaimed by the next
claim), unverifiable, foreign (another host) or corrupt (unreadable record).
Where holds have weights (run --weight), each holder's weight and the sum of
weights against the limit (U/L used) are shown too; waiters queued for the
key are counted (N waiting).
Judges holders but changes nothing, and creates nothing: a missing lock root
has no keys. Files in a key directory that are not slot records are listed as
stray and never counted. With --store, the same for the keys of a
PostgreSQL store (holders there are judged by their sessions and renewals).

Options:
  --key K        only this key (default: every key under the lock root)
  --root DIR     lock root (default: $XDG_RUNTIME_DIR/proclease, else
                 <tmpdir>/proclease-<uid>)
${storeHelp(17)}
  --wait SECONDS how long to wait for a key another process is changing
                 (default 10); a key held still longer (a process stopped
                 mid-change) is reported as frozen (key_frozen, exit 70)
  --json         machine-readable output (schema version 1, see the README)
  --verbose, -v  add holder pid, argv0, host, age, fence and metadata
  --help, -h     this help

Examples:
  proclease status
  proclease status --key deploy --verbose
  proclease status --json | jq '.keys[] | select(.active > 0) | .key'
  proclease status --store postgres://app@db.internal/ops --verbose
`

/** One holder in `status --json` (version 1). Verbose-only fields are omitted otherwise. */
export interface JsonHolder {
  slot: number
  state: string
  /** Share of the limit the hold takes (1 unless taken with a weight). */
  weight: number
  pid?: number
  starttime?: string
  argv0?: string | null
  hostname?: string
  acquiredAt?: string
  ageMs?: number | null
  fence?: number
  limit?: number
  metadata?: Record<string, string | number | boolean>
  inconsistent?: boolean
  /** The kernel lock is held by another process than the recorded one (which is gone). */
  lockInherited?: boolean
  problem?: string
}

export interface JsonKey {
  /** Null for a key directory whose key file is missing (then `dir` names it). */
  key: string | null
  dir?: string
  limit: number | null
  active: number
  /** Sum of the weights of the holds counted in `active`: what the limit bounds. */
  used: number
  /** Live waiters queued for the key. */
  waiting: number
  holders: JsonHolder[]
  /** Entries that are not slot records: never counted. Present only when there are some. */
  stray?: string[]
}

export interface StatusJson {
  version: 1
  keys: JsonKey[]
}

function ageMs(acquiredAt: string | undefined, now: number): number | null {
  if (acquiredAt === undefined) return null
  const t = Date.parse(acquiredAt)
  return Number.isFinite(t) ? Math.max(0, now - t) : null
}

export function holderJson(h: HolderStatus, verbose: boolean, now: number): JsonHolder {
  const out: JsonHolder = { slot: h.slot, state: h.state, weight: h.weight }
  if (!verbose) return out
  if (h.pid !== undefined) out.pid = h.pid
  if (h.starttime !== undefined) out.starttime = h.starttime
  if (h.argv0 !== undefined) out.argv0 = h.argv0
  if (h.hostname !== undefined) out.hostname = h.hostname
  if (h.acquiredAt !== undefined) {
    out.acquiredAt = h.acquiredAt
    out.ageMs = ageMs(h.acquiredAt, now)
  }
  if (h.fence !== undefined) out.fence = h.fence
  if (h.limit !== undefined) out.limit = h.limit
  if (h.metadata !== undefined) out.metadata = h.metadata
  if (h.inconsistent) out.inconsistent = true
  if (h.lockInherited) out.lockInherited = true
  if (h.problem !== undefined) out.problem = h.problem
  return out
}

export function keyJson(s: KeyStatus, verbose: boolean, now: number, dir?: string): JsonKey {
  const out: JsonKey = {
    key: dir === undefined ? s.key : null,
    limit: s.limit ?? null,
    active: s.active,
    used: s.used,
    waiting: s.waiting,
    holders: s.holders.map((h) => holderJson(h, verbose, now)),
  }
  if (dir !== undefined) out.dir = dir
  if (s.stray !== undefined && s.stray.length > 0) out.stray = s.stray
  return out
}

/**
 * The text form of one key: a header line, then one line per slot. Holder-chosen text (argv0,
 * hostname, metadata) is printed as is here: writeLine escapes what a terminal would act on.
 */
export function keyText(k: JsonKey, verbose: boolean): string[] {
  const name = k.key !== null ? JSON.stringify(k.key) : `directory ${k.dir ?? '?'} (its key file is missing)`
  // Weights are shown once any holder of the key has one: then U/L used is what the limit bounds.
  const weighted = k.used !== k.active || k.holders.some((h) => h.weight !== 1)
  let head = `${name}  ${heldText(k.active, k.limit)}`
  if (weighted) head += `, ${k.used}/${k.limit ?? '?'} used`
  if (k.waiting > 0) head += `, ${k.waiting} waiting`
  const lines = [head]
  for (const h of k.holders) {
    const slot = h.slot >= 0 ? `slot ${h.slot}` : 'entry'
    let line = `  ${slot.padEnd(8)} ${h.state}`
    const bits: string[] = []
    if (verbose) {
      if (h.pid !== undefined) bits.push(`pid ${h.pid}${h.argv0 ? ` (${h.argv0})` : ''}`)
      if (h.hostname !== undefined) bits.push(`host ${h.hostname}`)
      if (h.ageMs !== undefined && h.ageMs !== null) bits.push(`age ${formatDuration(h.ageMs)}`)
      if (h.fence !== undefined) bits.push(`fence ${h.fence}`)
      if (h.metadata && Object.keys(h.metadata).length > 0) bits.push(`metadata ${JSON.stringify(h.metadata)}`)
      if (h.inconsistent) bits.push('INCONSISTENT: kernel lock free while the holder looks alive')
      if (h.lockInherited) bits.push('lock held by another process of the holder (inherited): the recorded pid is gone')
      if (h.problem !== undefined) bits.push(`problem ${h.problem}`)
    }
    if (weighted) bits.push(`weight ${h.weight}`)
    if (bits.length > 0) line = `${line.padEnd(22)} ${bits.join('  ')}`
    lines.push(line)
  }
  if (k.stray !== undefined) lines.push(`  stray    ${k.stray.join(', ')} (not slot records: never counted)`)
  return lines
}

export async function statusCommand(args: string[], io: Io): Promise<number> {
  const parsed = parse('status', args, {
    key: { type: 'string' },
    root: { type: 'string' },
    ...STORE_OPTIONS,
    wait: { type: 'string' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  })
  if (parsed.values.help === true) {
    io.stdout.write(STATUS_HELP)
    return EXIT.OK
  }
  noPositionals(parsed, 'status')
  const key = optionalString(parsed.values, 'key', 'status')
  const choice = chooseStore(parsed.values, 'status')
  const verbose = parsed.values.verbose === true
  const waitMs = parseWaitSeconds(optionalString(parsed.values, 'wait', 'status'), 'status') ?? GATE_WAIT_MS
  return withStore(choice, io, 'status', async (store) => {
    const out = store === null ? await fileStatus(choice, key, verbose, waitMs) : await storeStatus(store, key, verbose, waitMs)
    if (parsed.values.json === true) {
      writeJson(io.stdout, out)
      return EXIT.OK
    }
    if (out.keys.length === 0) {
      writeLine(io.stdout, choice.kind === 'postgres' ? `no keys in ${describeStore(choice)}` : `no keys under ${choice.lockRoot ?? defaultLockRoot()}`)
      return EXIT.OK
    }
    for (const k of out.keys) for (const line of keyText(k, verbose)) writeLine(io.stdout, line)
    return EXIT.OK
  })
}

async function fileStatus(choice: StoreChoice, key: string | undefined, verbose: boolean, waitMs: number): Promise<StatusJson> {
  const lockRoot = choice.kind === 'file' ? choice.lockRoot : undefined
  const now = Date.now()
  const out: StatusJson = { version: 1, keys: [] }
  if (key !== undefined) {
    out.keys.push(keyJson(await inspectLeases({ key, lockRoot, verbose, waitMs }), verbose, now))
  } else {
    // Every key directory, by key where its key file says which, else by its directory name.
    const store = storeFor(lockRoot)
    for (const e of store.listKeyEntries()) {
      const st = await store.inspectDir(e.key ?? e.dir, e.dir, verbose, { waitMs })
      out.keys.push(keyJson(st, verbose, now, e.key === null ? e.dir : undefined))
    }
  }
  return out
}

/** Status of one key, or of every key that has held slots, in a store given by URL. */
async function storeStatus(store: LeaseStore, key: string | undefined, verbose: boolean, waitMs: number): Promise<StatusJson> {
  const now = Date.now()
  const out: StatusJson = { version: 1, keys: [] }
  const keys = key !== undefined ? [key] : await listLeaseKeys({ store })
  for (const k of keys) out.keys.push(keyJson(await inspectLeases({ key: k, store, verbose, waitMs }), verbose, now))
  return out
}
