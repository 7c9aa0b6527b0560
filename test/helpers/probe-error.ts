import { expect } from 'vitest'
import { ProbeError } from '../../lib/index.js'

/** Runs fn, which must throw a ProbeError, and returns it for assertions on its code. */
export function probeError(fn: () => unknown): ProbeError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProbeError)
    return err as ProbeError
  }
  throw new Error('expected a ProbeError, nothing was thrown')
}
