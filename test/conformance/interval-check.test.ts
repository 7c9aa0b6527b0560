// The independent interval check the bound tests rely on (peakConcurrency in test/helpers/lease.ts):
// it must count real overlaps and never invent one where intervals only touch.
import { describe, expect, it } from 'vitest'
import { type Interval, peakConcurrency } from '../helpers/lease.js'

describe('peakConcurrency', () => {
  const iv = (start: number, end: number): Interval => ({ who: 'x', start: BigInt(start), end: BigInt(end) })
  it('counts overlaps and treats touching intervals as disjoint', () => {
    expect(peakConcurrency([])).toBe(0)
    expect(peakConcurrency([iv(0, 10), iv(10, 20)])).toBe(1)
    expect(peakConcurrency([iv(0, 10), iv(9, 20)])).toBe(2)
    expect(peakConcurrency([iv(0, 100), iv(10, 20), iv(15, 30), iv(40, 50)])).toBe(3)
  })

  it('sums weights: the peak is the most weight held at once', () => {
    const w = (start: number, end: number, weight: number): Interval => ({ who: 'x', start: BigInt(start), end: BigInt(end), weight })
    expect(peakConcurrency([w(0, 10, 3), w(10, 20, 3)])).toBe(3)
    expect(peakConcurrency([w(0, 10, 2), w(5, 20, 1), w(6, 7, 1)])).toBe(4)
    expect(peakConcurrency([w(0, 10, 1), w(10, 20, 3), w(9, 10, 1)])).toBe(3)
  })

  it('refuses an interval that ends before it starts', () => {
    expect(() => peakConcurrency([iv(10, 5)])).toThrow(/ends before it starts/)
  })
})
