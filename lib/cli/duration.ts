// Durations as operators write them (`prune --idle 1d`): a sequence of number+unit parts, largest
// unit first (`1h30m`), or a plain number of seconds (as `--wait` and `--ttl` take). A few lines,
// so no dependency.

const UNIT_MS: Readonly<Record<string, number>> = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 }
const ORDER = ['w', 'd', 'h', 'm', 's', 'ms']
const PART = /([0-9]+(?:\.[0-9]+)?)(ms|[wdhms])/y
const PLAIN = /^[0-9]+$/

/**
 * Milliseconds for `30s`, `10m`, `2h`, `1d`, `1w`, `250ms`, `1h30m` or `90` (seconds); null for anything
 * else (negative, unknown unit, units out of order or repeated, a result that is not a safe integer).
 */
export function parseDuration(text: string): number | null {
  if (PLAIN.test(text)) {
    const ms = Number(text) * 1000
    return Number.isSafeInteger(ms) ? ms : null
  }
  let total = 0
  let at = 0
  let lastUnit = -1
  PART.lastIndex = 0
  while (at < text.length) {
    PART.lastIndex = at
    const m = PART.exec(text)
    if (m === null) return null
    const unit = ORDER.indexOf(m[2] as string)
    // Largest unit first, each at most once: `30m2h` or `1d1d` is more likely a typo than a sum.
    if (unit <= lastUnit) return null
    lastUnit = unit
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number)
    at = PART.lastIndex
  }
  if (at === 0) return null
  const ms = Math.round(total)
  return Number.isSafeInteger(ms) ? ms : null
}
