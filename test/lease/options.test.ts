// Issue 8, defect 16: misspelled option names and wrongly typed values are invalid_argument,
// naming the option (and, for a near miss, the name probably meant); none is silently ignored.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, tryAcquireLease, withLease } from '../../lib/index.js'
import { LEASE_OPTION_NAMES, checkBoolean, checkOptionNames, normalizeOptions } from '../../lib/lease/options.js'

let dir = ''
let root = ''
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'proclease-options-'))
  root = join(dir, 'locks')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** The invalid_argument a call throws (sync or async), for its message. */
async function invalid(call: () => unknown): Promise<LeaseError> {
  let caught: unknown
  try {
    await call()
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(LeaseError)
  expect((caught as LeaseError).code).toBe('invalid_argument')
  return caught as LeaseError
}

describe('checkOptionNames', () => {
  const known = ['key', 'limit', 'waitMs', 'lockRoot'] as const

  it('accepts known names, present or undefined', () => {
    expect(() => checkOptionNames({ key: 'k', limit: 1, waitMs: undefined }, known, 'lease options')).not.toThrow()
    expect(() => checkOptionNames({}, known, 'lease options')).not.toThrow()
  })

  it.each([
    ['waitMS', 'waitMs'],
    ['waitms', 'waitMs'],
    ['lockroot', 'lockRoot'],
    ['limt', 'limit'],
    ['kye', 'key'],
    ['wait', 'waitMs'],
    ['timeout', 'waitMs'],
    ['root', 'lockRoot'],
  ])('names %s and suggests %s', async (wrong, meant) => {
    const err = await invalid(() => checkOptionNames({ key: 'k', [wrong]: 5 }, known, 'lease options'))
    expect(err.message).toBe(`lease options: unknown option ${JSON.stringify(wrong)} (did you mean ${JSON.stringify(meant)}?)`)
  })

  it('names an unknown option that is no near miss, without a suggestion', async () => {
    const err = await invalid(() => checkOptionNames({ key: 'k', colour: 'blue' }, known, 'lease options'))
    expect(err.message).toBe('lease options: unknown option "colour"')
  })

  it('rejects a misspelled name even when its value is undefined', async () => {
    await invalid(() => checkOptionNames({ key: 'k', waitMS: undefined }, known, 'lease options'))
  })
})

describe('checkBoolean', () => {
  it('takes booleans, and undefined as false', () => {
    expect(checkBoolean(true, 'flag')).toBe(true)
    expect(checkBoolean(false, 'flag')).toBe(false)
    expect(checkBoolean(undefined, 'flag')).toBe(false)
  })

  it.each(['yes', 'true', 1, 0, null, {}])('rejects %j, naming the option', async (value) => {
    const err = await invalid(() => checkBoolean(value, 'allowUnsafeFilesystem'))
    expect(err.message).toMatch(/^allowUnsafeFilesystem must be a boolean/)
  })
})

describe('normalizeOptions', () => {
  it('lists the lease options', () => {
    expect([...LEASE_OPTION_NAMES].sort()).toEqual(['allowUnsafeFilesystem', 'fair', 'key', 'limit', 'lockRoot', 'metadata', 'signal', 'store', 'waitMs', 'weight'])
  })

  it('accepts every option, and undefined for the optional ones', () => {
    const signal = new AbortController().signal
    const all = normalizeOptions({ key: 'k', limit: 2, lockRoot: root, waitMs: 5, signal, metadata: { a: 1 }, allowUnsafeFilesystem: false })
    expect(all).toMatchObject({ key: 'k', limit: 2, waitMs: 5, metadata: { a: 1 }, allowUnsafeFilesystem: false })
    const sparse = normalizeOptions({ key: 'k', limit: 1, lockRoot: undefined, waitMs: undefined, signal: undefined, metadata: undefined, allowUnsafeFilesystem: undefined })
    expect(sparse).toMatchObject({ lockRoot: undefined, waitMs: Infinity, signal: undefined, metadata: {}, allowUnsafeFilesystem: false })
  })

  it('accepts metadata with a null prototype', () => {
    const metadata = Object.assign(Object.create(null) as Record<string, string>, { job: 'x' })
    expect(normalizeOptions({ key: 'k', limit: 1, metadata }).metadata).toEqual({ job: 'x' })
  })

  class Job {
    name = 'x'
  }

  it.each([
    ['waitMS: 0', { waitMS: 0 }, /unknown option "waitMS" \(did you mean "waitMs"\?\)/],
    ['timeout: 5', { timeout: 5 }, /unknown option "timeout" \(did you mean "waitMs"\?\)/],
    ["allowUnsafeFilesystem: 'yes'", { allowUnsafeFilesystem: 'yes' }, /allowUnsafeFilesystem must be a boolean/],
    ['metadata: new Date()', { metadata: new Date() }, /metadata must be a plain object/],
    ['metadata: []', { metadata: [] }, /metadata must be a plain object/],
    ['metadata: new Map()', { metadata: new Map([['a', 1]]) }, /metadata must be a plain object/],
    ['metadata: a class instance', { metadata: new Job() }, /metadata must be a plain object/],
    ["signal: 'abort'", { signal: 'abort' }, /signal must be an AbortSignal/],
    ['signal: { aborted: false }', { signal: { aborted: false } }, /signal must be an AbortSignal/],
    ["waitMs: '5'", { waitMs: '5' }, /waitMs must be a number/],
    ['lockRoot: 5', { lockRoot: 5 }, /lockRoot must be a non-empty path/],
  ])('rejects %s', async (_name, extra, message) => {
    const err = await invalid(() => normalizeOptions({ key: 'k', limit: 1, ...extra } as never))
    expect(err.message).toMatch(message)
  })

  // The defect as a user met it: the misspelled deadline was ignored and the call waited forever.
  it('rejects the misspelled deadline before waiting for a held key', async () => {
    const held = await acquireLease({ key: 'busy', limit: 1, lockRoot: root })
    try {
      const opts = { key: 'busy', limit: 1, lockRoot: root, waitMS: 0 } as never
      await invalid(() => acquireLease(opts))
      await invalid(() => tryAcquireLease(opts))
      await invalid(() => withLease(opts, () => 'ran'))
    } finally {
      expect(await held.release()).toBe(true)
    }
  })
})
