// The per-key fence counter, kept as 20 zero-padded digits at the start of the gate file.
//
// Fences must never repeat or go down, and must stay exact in a JS number (<= 2^53 - 1). The
// next fence is above the stored counter and above every fence still on disk; a fresh key (or a
// counter lost with a wiped root) starts from the clock in microseconds, so fences keep rising
// across wiped roots. That seed is capped at 2^52 (reached in the year 2112): a clock far in the
// future must not use up the range, and the cap leaves 2^52 grants of headroom. A counter that
// would pass 2^53 - 1, or that cannot be read exactly (a longer counter written by something
// else), fails the claim with `fence_exhausted` before anything is written.
import * as fs from 'node:fs'
import { LeaseError } from '../../errors.js'
import { writeAll } from './fsx.js'

export const FENCE_WIDTH = 20
export const FENCE_MAX = Number.MAX_SAFE_INTEGER
export const SEED_CEILING = 2 ** 52

function exhausted(why: string): LeaseError {
  return new LeaseError(
    'fence_exhausted',
    `the fence counter of this key cannot grow any further (${why}); fences must never repeat, so the key refuses new grants`,
  )
}

/** Reads the stored counter: 0 when there is none (a fresh or unreadable gate). */
export function readCounter(fd: number): number {
  const buf = Buffer.alloc(FENCE_WIDTH + 1)
  const n = fs.readSync(fd, buf, 0, buf.length, 0)
  const text = buf.toString('latin1', 0, n)
  const digits = /^[0-9]+/.exec(text)?.[0]
  if (digits === undefined) return 0
  if (digits.length > FENCE_WIDTH) throw exhausted('the stored counter is beyond 2^53 - 1')
  // Up to 15 significant digits a Number is exact; beyond, compare as BigInt.
  const value = Number(digits)
  if (value >= 1e15 && BigInt(digits) > BigInt(FENCE_MAX)) throw exhausted('the stored counter is beyond 2^53 - 1')
  return value
}

/**
 * Takes the next fence: above `stored`, above `seen` (the largest fence on disk) and, for a fresh
 * counter, at least the clock seed and above the root's floor of pruned keys. Writes it back before returning it.
 */
export function takeFence(fd: number, seen: number, clockMs: number, floor: () => number = () => 0): number {
  if (!(seen <= FENCE_MAX)) throw exhausted('a record on disk carries a fence beyond 2^53 - 1')
  const stored = readCounter(fd)
  // A fresh counter also starts above every counter of a pruned key (prune.ts).
  const seed = stored === 0 ? Math.max(Math.min(Math.max(Math.floor(clockMs), 0) * 1000, SEED_CEILING), floor() + 1) : 0
  const next = Math.max(stored + 1, seen + 1, seed)
  if (next > FENCE_MAX) throw exhausted('the next fence would pass 2^53 - 1')
  writeAll(fd, Buffer.from(String(next).padStart(FENCE_WIDTH, '0')))
  return next
}

/**
 * Raises the stored counter to at least `fence` (a record about to be removed carried it), so
 * that no later grant can fall below it. Throws `fence_exhausted`, changing nothing, when the
 * fence is beyond 2^53 - 1.
 */
export function foldFence(fd: number, fence: number): void {
  if (!(fence <= FENCE_MAX)) throw exhausted('a record on disk carries a fence beyond 2^53 - 1')
  if (readCounter(fd) >= fence) return
  writeAll(fd, Buffer.from(String(fence).padStart(FENCE_WIDTH, '0')))
}
