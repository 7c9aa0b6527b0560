import type { HolderRecord } from '../classify.js'
import type { Metadata } from './options.js'

/** On-disk format version of slot records; a newer version is never judged, only counted. */
export const RECORD_VERSION = 1

/** One held slot as stored in `slot-<i>`. */
export interface SlotRecord extends HolderRecord {
  v: number
  key: string
  slot: number
  token: string
  fence: number
  limit: number
  /** The holder keeps a kernel lock on this file for the life of the hold. */
  kernelLock: boolean
  /**
   * The holder never drops that lock before this record is removed (library holds; absent in
   * records of 0.1 and false once `run` hands the hold to a command, which may close its copy).
   * A free lock then proves the hold ended, whatever the recorded identity says: a worker thread
   * that held it was terminated, or its process closed the descriptor.
   */
  lockUntilRemoved?: boolean
  /** Share of the limit the hold takes; absent means 1 (records before weights). */
  weight?: number
  /** Wall-clock time of the grant, for display only. */
  acquiredAt: string
  metadata: Metadata
}

export const MAX_RECORD_BYTES = 64 * 1024

export type ParsedRecord = { ok: true; record: SlotRecord } | { ok: false; why: string }

function isStr(v: unknown): v is string {
  return typeof v === 'string'
}

function isNullableStr(v: unknown): v is string | null {
  return v === null || typeof v === 'string'
}

/** Parses and validates a record; anything off is reported, never guessed. */
export function parseRecord(text: string): ParsedRecord {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return { ok: false, why: 'not_json' }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, why: 'not_an_object' }
  const r = raw as Record<string, unknown>
  if (r.v !== RECORD_VERSION) return { ok: false, why: typeof r.v === 'number' && r.v > RECORD_VERSION ? 'future_version' : 'bad_version' }
  const fields =
    isStr(r.key) &&
    Number.isSafeInteger(r.slot) &&
    isStr(r.token) &&
    /^[0-9a-f]{32}$/.test(r.token) &&
    // An integer beyond 2^53 is kept (inexact) so that claims refuse to undercut it.
    Number.isInteger(r.fence) &&
    (r.fence as number) >= 0 &&
    Number.isSafeInteger(r.limit) &&
    typeof r.kernelLock === 'boolean' &&
    (r.lockUntilRemoved === undefined || typeof r.lockUntilRemoved === 'boolean') &&
    (r.weight === undefined || (Number.isSafeInteger(r.weight) && (r.weight as number) >= 1)) &&
    isStr(r.acquiredAt) &&
    // pid is validated by the probe (an invalid pid classifies dead); it only has to be present.
    'pid' in r &&
    isStr(r.starttime) &&
    isNullableStr(r.argv0) &&
    isStr(r.bootId) &&
    isStr(r.hostname) &&
    isNullableStr(r.machineId) &&
    isNullableStr(r.pidNamespace) &&
    r.metadata !== null &&
    typeof r.metadata === 'object' &&
    !Array.isArray(r.metadata)
  if (!fields) return { ok: false, why: 'bad_fields' }
  return { ok: true, record: r as unknown as SlotRecord }
}

/**
 * Serializes a record, padded with trailing spaces to at least `minBytes` so a later in-place
 * rewrite is one write of at least the same length (a killed writer never leaves it torn).
 */
export function serializeRecord(record: SlotRecord, minBytes = 0): Buffer {
  const body = JSON.stringify(record) + '\n'
  const len = Buffer.byteLength(body)
  return Buffer.from(len >= minBytes ? body : body + ' '.repeat(minBytes - len))
}

/** The share of the limit a record's hold takes. */
export function weightOf(record: SlotRecord): number {
  return record.weight ?? 1
}
