// The key's summary, kept in its gate file after the fence counter: which slot indices are taken
// and with what weight, the queue of waiting places, the last ticket, and pending takeover
// notices. It lets a claim count without opening every holder's record, so claims cost the same
// with one holder or a thousand.
//
// It may over-count, never under-count: every writer (all under the gate) adds an entry before
// creating its file and removes it only after removing the file, so a writer killed in between
// leaves an entry too many — a slot that looks taken, a place that looks queued — and the next
// full judgement of the directory (judge.ts), which happens whenever the summary says "no room",
// rebuilds it exactly. A summary that is missing or does not check out (a torn write, another
// program's bytes) is unknown, never empty: the caller rebuilds it from the directory.
import * as fs from 'node:fs'
import { crc32 } from 'node:zlib'
import { writeAllAt } from './fsx.js'

/** Where the summary starts in the gate file (the fence counter owns the bytes before). */
const OFFSET = 64
/** `S1 <length: 10 digits> <crc32: 8 hex>\n` */
const HEADER_BYTES = 23
/** Far beyond any real summary; a header claiming more is not ours. */
const MAX_BYTES = 4 * 1024 * 1024

/** Consecutive slot indices held with the same weight: [first index, how many, weight]. */
export type Run = [number, number, number]
/** A waiting place: [ticket, weight]. */
export type QueueEntry = [number, number]

export interface Summary {
  slots: Run[]
  queue: QueueEntry[]
  /** The last ticket handed out. */
  ticket: number
  /** Fences of the crashed holders whose notices wait for the next grant, oldest first. */
  notices: number[]
  /** Bumped by every change to `slots`: a waiter's list of holders is current while it is equal. */
  gen: number
  /** Wall-clock time (ms) of the last full judgement of the directory. */
  scannedAt: number
  /**
   * The key directory's mtime (ns, decimal) and the fence counter when the summary was last
   * written, after its writer's changes: while both are unchanged, no entry was added or removed
   * since (and no older process granted), so a claim need not list the directory.
   */
  dirMtime: string
  counter: number
}

export function emptySummary(): Summary {
  return { slots: [], queue: [], ticket: 0, notices: [], gen: 0, scannedAt: 0, dirMtime: '', counter: 0 }
}

let scratch = Buffer.alloc(16 * 1024)

/** The stored summary, or null when there is none or it does not check out. */
export function readSummary(fd: number): Summary | null {
  const n = fs.readSync(fd, scratch, 0, scratch.length, OFFSET)
  if (n < HEADER_BYTES) return null
  const m = /^S1 ([0-9]{10}) ([0-9a-f]{8})\n/.exec(scratch.toString('latin1', 0, HEADER_BYTES))
  if (m === null) return null
  const len = Number(m[1])
  if (len > MAX_BYTES) return null
  if (HEADER_BYTES + len > scratch.length) {
    scratch = Buffer.alloc(HEADER_BYTES + len)
    return readSummary(fd)
  }
  if (n < HEADER_BYTES + len) return null
  const body = scratch.subarray(HEADER_BYTES, HEADER_BYTES + len)
  if (crc32(body).toString(16).padStart(8, '0') !== m[2]) return null
  let raw: unknown
  try {
    raw = JSON.parse(body.toString('utf8'))
  } catch {
    return null
  }
  return isSummary(raw) ? raw : null
}

function isSafeNat(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

function isSummary(raw: unknown): raw is Summary {
  if (raw === null || typeof raw !== 'object') return false
  const s = raw as Record<string, unknown>
  const tuples = (v: unknown, width: number): boolean =>
    Array.isArray(v) && v.every((t) => Array.isArray(t) && t.length === width && t.every(isSafeNat))
  return (
    tuples(s.slots, 3) &&
    tuples(s.queue, 2) &&
    isSafeNat(s.ticket) &&
    Array.isArray(s.notices) &&
    s.notices.every(isSafeNat) &&
    isSafeNat(s.gen) &&
    isSafeNat(s.scannedAt) &&
    typeof s.dirMtime === 'string' &&
    isSafeNat(s.counter)
  )
}

export function writeSummary(fd: number, s: Summary): void {
  const body = Buffer.from(JSON.stringify(s))
  const header = Buffer.from(`S1 ${String(body.length).padStart(10, '0')} ${crc32(body).toString(16).padStart(8, '0')}\n`, 'latin1')
  writeAllAt(fd, Buffer.concat([header, body]), OFFSET)
}

// ---- slot runs ----------------------------------------------------------------------------

/** Sum of the weights of every slot the summary counts (below `belowIndex`, for a fault seam). */
export function usedWeight(s: Summary, belowIndex = Infinity): number {
  let sum = 0
  for (const [first, count, weight] of s.slots) sum += Math.max(0, Math.min(count, belowIndex - first)) * weight
  return sum
}

/** How many slots the summary counts (below `belowIndex`, for a fault seam). */
export function slotCount(s: Summary, belowIndex = Infinity): number {
  let n = 0
  for (const [first, count] of s.slots) n += Math.max(0, Math.min(count, belowIndex - first))
  return n
}

/** The lowest slot index the summary does not count as taken. */
export function lowestFree(s: Summary): number {
  let next = 0
  for (const [first, count] of s.slots) {
    if (first > next) return next
    next = first + count
  }
  return next
}

export function hasSlot(s: Summary, index: number): boolean {
  return s.slots.some(([first, count]) => index >= first && index < first + count)
}

/** Counts `index` as taken with `weight` (merging with neighbours of the same weight). */
export function addSlot(s: Summary, index: number, weight: number): void {
  if (hasSlot(s, index)) throw new Error(`summary: slot ${index} is already counted`)
  s.gen += 1
  const runs = s.slots
  let at = runs.findIndex(([first]) => first > index)
  if (at === -1) at = runs.length
  runs.splice(at, 0, [index, 1, weight])
  // Merge with the next run, then with the previous one.
  const next = runs[at + 1]
  if (next && next[0] === index + 1 && next[2] === weight) {
    ;(runs[at] as Run)[1] += next[1]
    runs.splice(at + 1, 1)
  }
  const prev = runs[at - 1]
  const cur = runs[at] as Run
  if (prev && prev[0] + prev[1] === index && prev[2] === weight) {
    prev[1] += cur[1]
    runs.splice(at, 1)
  }
}

/** Stops counting `index`; its weight, or null when it was not counted. */
export function removeSlot(s: Summary, index: number): number | null {
  const runs = s.slots
  const at = runs.findIndex(([first, count]) => index >= first && index < first + count)
  if (at === -1) return null
  s.gen += 1
  const [first, count, weight] = runs[at] as Run
  const parts: Run[] = []
  if (index > first) parts.push([first, index - first, weight])
  if (index < first + count - 1) parts.push([index + 1, first + count - 1 - index, weight])
  runs.splice(at, 1, ...parts)
  return weight
}

/** Builds the runs from (index, weight) pairs. */
export function runsOf(pairs: Iterable<[number, number]>): Run[] {
  const s = emptySummary()
  for (const [index, weight] of [...pairs].sort((a, b) => a[0] - b[0])) addSlot(s, index, weight)
  return s.slots
}

// ---- queue --------------------------------------------------------------------------------

export function enqueue(s: Summary, weight: number): number {
  s.ticket += 1
  s.queue.push([s.ticket, weight])
  return s.ticket
}

export function dequeue(s: Summary, ticket: number): void {
  s.queue = s.queue.filter(([t]) => t !== ticket)
}
