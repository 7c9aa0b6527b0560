// openStore(spec): the JSON store specs the conformance targets and agents share. Specs are
// checked (a typo must not silently open a different store), and a file spec without the kernel
// witness really judges by identity alone.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { tryAcquireLease } from '../../lib/index.js'
import { type StoreSpec, openStore } from '../../lib/internal.js'
import { agent, cleanup, freshRoot, removeLeaseLib, trackPid } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

describe('openStore', () => {
  const bad: Array<[string, unknown]> = [
    ['null', null],
    ['an unknown kind', { kind: 'redis', root: '/tmp/x' }],
    ['a file spec without a root', { kind: 'file' }],
    ['an unknown fault', { kind: 'file', root: '/tmp/x', faults: { overadmit: 1 } }],
    ['overAdmit not an integer', { kind: 'file', root: '/tmp/x', faults: { overAdmit: true } }],
    ['noGate not a boolean', { kind: 'file', root: '/tmp/x', faults: { noGate: 1 } }],
    ['kernelWitness not a boolean', { kind: 'file', root: '/tmp/x', kernelWitness: 'no' }],
  ]
  it.each(bad)('refuses %s with invalid_argument', (_name, spec) => {
    expect(() => openStore(spec as StoreSpec)).toThrow(expect.objectContaining({ code: 'invalid_argument' }))
  })

  it('kernelWitness: false judges by identity alone: a lock inherited by a live child no longer keeps the slot', async () => {
    const { root } = freshRoot()
    const key = 'witness'
    const withKernel = openStore({ kind: 'file', root })
    const identityOnly = openStore({ kind: 'file', root, kernelWitness: false })
    try {
      // The recorded holder dies; a child it started still holds the slot's kernel lock.
      const a = await agent()
      const g = await a.call({ op: 'acquire', spec: { kind: 'file', root }, opts: { key, limit: 1 } })
      expect(g.ev).toBe('acquired')
      const spawned = await a.call({ op: 'inherit' })
      expect(spawned.ev).toBe('spawned')
      trackPid(spawned.pid as number)
      await a.kill()

      // The kernel witness says the slot is held: kept.
      expect(await tryAcquireLease({ key, limit: 1, store: withKernel })).toBeNull()
      // Identity alone proves the recorded holder gone: reclaimed.
      const lease = await tryAcquireLease({ key, limit: 1, store: identityOnly })
      expect(lease?.slot).toBe(0)
      expect(await lease?.release()).toBe(true)
    } finally {
      await withKernel.close()
      await identityOnly.close()
    }
  })
})
