// Pruning idle keys on the file store: the race with a claim, and fences after a prune. (The
// shared behaviour — idle keys go, held and waited keys stay — is in the conformance suite.)
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { FileStore } from '../../lib/lease/file/index.js'
import { selfHolder } from '../../lib/lease/engine.js'
import { keyDirName } from '../../lib/lease/root.js'
import type { ClaimRequest } from '../../lib/lease/store.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const request = (key: string): ClaimRequest => ({ key, limit: 1, weight: 1, metadata: {}, holder: selfHolder(), fair: true, mode: 'try', place: null })

describe('prune against a concurrent claim', () => {
  it('a claim made while prune holds an idle key waits, then lands in a fresh directory with a higher fence', async () => {
    const { root } = freshRoot()
    const claimer = new FileStore({ root })
    const first = claimer.claimNow(request('k'))
    if (first.kind !== 'granted') throw new Error(`expected a grant, got ${first.kind}`)
    const oldFence = first.hold.fence
    expect(await claimer.release(first.hold)).toBe(true)

    let during: string | null = null
    const pruner = new FileStore({
      root,
      faults: {
        beforePruneRemove: () => {
          // Another store's claim, right now: the key is being removed under the gate.
          during = claimer.claimNow(request('k')).kind
        },
      },
    })
    const report = await pruner.prune(0, false)
    expect(report.removed).toEqual(['k'])
    expect(during).toBe('contended')

    const after = claimer.claimNow(request('k'))
    if (after.kind !== 'granted') throw new Error(`expected a grant, got ${after.kind}`)
    expect(after.hold.fence).toBeGreaterThan(oldFence)
    expect(await claimer.release(after.hold)).toBe(true)
    // Nothing of the pruned directory is left in the root.
    expect(fs.readdirSync(root).filter((n) => n.startsWith('.prune-'))).toEqual([])
    await claimer.close()
    await pruner.close()
  })

  it('fences of a pruned key never go back, even with the clock set back a day', async () => {
    const { root } = freshRoot()
    const now = Date.now()
    const early = new FileStore({ root, clock: () => now })
    const a = early.claimNow(request('k'))
    if (a.kind !== 'granted') throw new Error(a.kind)
    await early.release(a.hold)
    expect((await early.prune(0, false)).removed).toEqual(['k'])
    // A fresh key would seed from the clock; a clock a day behind would start below the old fences.
    const late = new FileStore({ root, clock: () => now - 86_400_000 })
    const b = late.claimNow(request('k'))
    if (b.kind !== 'granted') throw new Error(b.kind)
    expect(b.hold.fence).toBeGreaterThan(a.hold.fence)
    await late.release(b.hold)
    await early.close()
    await late.close()
  })

  it('keeps a key whose gate is held right now, and a key used within the idle time', async () => {
    const { root } = freshRoot()
    const store = new FileStore({ root })
    const a = store.claimNow(request('busy'))
    if (a.kind !== 'granted') throw new Error(a.kind)
    await store.release(a.hold)
    const fd = fs.openSync(join(root, keyDirName('busy'), 'gate'), 'r')
    const { defaultBinding } = await import('../../lib/binding.js')
    expect(defaultBinding.binding?.lockExclusiveNB(fd)).toBe(0)
    try {
      expect(await store.prune(0, false)).toEqual({ dryRun: false, removed: [], kept: 1 })
    } finally {
      fs.closeSync(fd)
    }
    expect(await store.prune(60_000, false)).toEqual({ dryRun: false, removed: [], kept: 1 })
    expect(await store.prune(0, true)).toEqual({ dryRun: true, removed: ['busy'], kept: 0 })
    expect(fs.existsSync(join(root, keyDirName('busy')))).toBe(true)
    await store.close()
  })
})
