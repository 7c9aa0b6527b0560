// `proclease status`: counts and per-slot states of one key or of every key under a lock root.
import { inspectLeases, listLeaseKeys } from '../lease/api.js'
import { defaultLockRoot } from '../lease/root.js'
import type { HolderStatus, KeyStatus } from '../lease/store.js'
import { EXIT, type Io, formatDuration, heldText, noPositionals, optionalString, parse, writeJson, writeLine } from './common.js'

export const STATUS_HELP = `Usage: proclease status [--key K] [--root DIR] [--json] [--verbose]

Show, for one key (or every key used under the lock root), how many slots are
held and the state of each: alive, dead (proven gone, reclaimed by the next
claim), unverifiable, foreign (another host) or corrupt (unreadable record).
Judges holders but changes nothing.

Options:
  --key K        only this key (default: every key under the lock root)
  --root DIR     lock root (default: $XDG_RUNTIME_DIR/proclease, else
                 <tmpdir>/proclease-<uid>)
  --json         machine-readable output (schema version 1, see the README)
  --verbose, -v  add holder pid, argv0, host, age, fence and metadata
  --help, -h     this help

Examples:
  proclease status
  proclease status --key deploy --verbose
  proclease status --json | jq '.keys[] | select(.active > 0) | .key'
`

/** One holder in `status --json` (version 1). Verbose-only fields are omitted otherwise. */
export interface JsonHolder {
  slot: number
  state: string
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
  problem?: string
}

export interface JsonKey {
  key: string
  limit: number | null
  active: number
  holders: JsonHolder[]
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
  const out: JsonHolder = { slot: h.slot, state: h.state }
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
  if (h.problem !== undefined) out.problem = h.problem
  return out
}

export function keyJson(s: KeyStatus, verbose: boolean, now: number): JsonKey {
  return {
    key: s.key,
    limit: s.limit ?? null,
    active: s.active,
    holders: s.holders.map((h) => holderJson(h, verbose, now)),
  }
}

/**
 * The text form of one key: a header line, then one line per slot. Holder-chosen text (argv0,
 * hostname, metadata) is printed as is here: writeLine escapes what a terminal would act on.
 */
export function keyText(k: JsonKey, verbose: boolean): string[] {
  const lines = [`${JSON.stringify(k.key)}  ${heldText(k.active, k.limit)}`]
  for (const h of k.holders) {
    const slot = h.slot >= 0 ? `slot ${h.slot}` : 'entry'
    let line = `  ${slot.padEnd(8)} ${h.state}`
    if (verbose) {
      const bits: string[] = []
      if (h.pid !== undefined) bits.push(`pid ${h.pid}${h.argv0 ? ` (${h.argv0})` : ''}`)
      if (h.hostname !== undefined) bits.push(`host ${h.hostname}`)
      if (h.ageMs !== undefined && h.ageMs !== null) bits.push(`age ${formatDuration(h.ageMs)}`)
      if (h.fence !== undefined) bits.push(`fence ${h.fence}`)
      if (h.metadata && Object.keys(h.metadata).length > 0) bits.push(`metadata ${JSON.stringify(h.metadata)}`)
      if (h.inconsistent) bits.push('INCONSISTENT: kernel lock free while the holder looks alive')
      if (h.problem !== undefined) bits.push(`problem ${h.problem}`)
      if (bits.length > 0) line = `${line.padEnd(22)} ${bits.join('  ')}`
    }
    lines.push(line)
  }
  return lines
}

export async function statusCommand(args: string[], io: Io): Promise<number> {
  const parsed = parse('status', args, {
    key: { type: 'string' },
    root: { type: 'string' },
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
  const lockRoot = optionalString(parsed.values, 'root', 'status')
  const verbose = parsed.values.verbose === true
  const keys = key !== undefined ? [key] : listLeaseKeys({ lockRoot })
  const now = Date.now()
  const out: StatusJson = { version: 1, keys: [] }
  for (const k of keys) out.keys.push(keyJson(await inspectLeases({ key: k, lockRoot, verbose }), verbose, now))

  if (parsed.values.json === true) {
    writeJson(io.stdout, out)
    return EXIT.OK
  }
  if (out.keys.length === 0) {
    writeLine(io.stdout, `no keys under ${lockRoot ?? defaultLockRoot()}`)
    return EXIT.OK
  }
  for (const k of out.keys) for (const line of keyText(k, verbose)) writeLine(io.stdout, line)
  return EXIT.OK
}
