// The duration syntax of `prune --idle`: 30s, 10m, 2h, 1d, 1h30m, or plain seconds (as --wait and --ttl).
import { describe, expect, it } from 'vitest'
import { parseDuration } from '../../lib/cli/duration.js'

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['1500', 1_500_000],
    ['250ms', 250],
    ['30s', 30_000],
    ['1.5s', 1500],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1w', 604_800_000],
    ['1h30m', 5_400_000],
    ['1d12h', 129_600_000],
    ['0s', 0],
  ])('%s is %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it.each(['', ' ', '-1', '-5m', '1x', 'm', '1 h', '1h 30m', '1.h', '.5', '1e3', 'Infinity', 'NaN', '10M', '1d1d', '30m2h', '9'.repeat(400), `${'9'.repeat(400)}d`])(
    'rejects %j',
    (text) => {
      expect(parseDuration(text)).toBeNull()
    },
  )
})
