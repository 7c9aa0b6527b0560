// Seeded pseudo-random numbers for the chaos harness (mulberry32): the same seed gives the same
// schedule of decisions. Timing still depends on the OS scheduler, so a seed reproduces the
// schedule, not the exact interleaving.

/** mulberry32: a tiny 32-bit generator, good enough to drive a chaos schedule. */
export function mulberry32(seed) {
  let a = seed >>> 0
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Helpers over a generator. */
export function rng(seed) {
  const next = mulberry32(seed)
  return {
    next,
    /** Integer in [lo, hi]. */
    int(lo, hi) {
      return lo + Math.floor(next() * (hi - lo + 1))
    },
    /** Float in [lo, hi). */
    range(lo, hi) {
      return lo + next() * (hi - lo)
    },
    pick(items) {
      return items[Math.floor(next() * items.length)]
    },
    chance(p) {
      return next() < p
    },
    /** Picks a name by weight from { name: weight }. */
    weighted(table) {
      const entries = Object.entries(table)
      let total = 0
      for (const [, w] of entries) total += w
      let x = next() * total
      for (const [name, w] of entries) {
        x -= w
        if (x < 0) return name
      }
      // Rounding can leave x at 0: never fall through to an entry whose weight is 0 (switched off).
      return entries.findLast(([, w]) => w > 0)[0]
    },
  }
}

/** Derives an independent 32-bit seed for a sub-stream (a worker, the driver). */
export function deriveSeed(seed, salt) {
  let h = (seed ^ 0x9e3779b9) >>> 0
  const s = String(salt)
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x85ebca6b) >>> 0
    h = (h ^ (h >>> 13)) >>> 0
  }
  return Math.imul(h ^ (h >>> 16), 0xc2b2ae35) >>> 0
}
