// Issue 8 defect 6: fences never repeat or go down, and never pass 2^53 - 1. A counter that cannot
// grow any further, or that cannot be read exactly, fails the claim with a typed error and writes
// nothing; a fresh key's seed from a clock far in the future stays bounded.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, tryAcquireLease } from '../../lib/index.js'
import { acquireWith } from '../../lib/lease/engine.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { keyDirName } from '../../lib/lease/root.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'fence-key'

async function keyWithCounter(counter: string): Promise<{ root: string; dir: string }> {
  const { root } = freshRoot()
  await (await acquireLease({ key: KEY, limit: 2, lockRoot: root })).release()
  const dir = join(root, keyDirName(KEY))
  fs.writeFileSync(join(dir, 'gate'), counter)
  return { root, dir }
}

describe('fence bounds', () => {
  for (const counter of [String(Number.MAX_SAFE_INTEGER).padStart(20, '0'), '99999999999999999999', '00009007199254740993']) {
    it(`a counter of ${counter} fails with fence_exhausted and writes nothing`, async () => {
      const { root, dir } = await keyWithCounter(counter)
      await expect(tryAcquireLease({ key: KEY, limit: 2, lockRoot: root })).rejects.toMatchObject({
        name: 'LeaseError',
        code: 'fence_exhausted',
      })
      expect(fs.readFileSync(join(dir, 'gate'), 'utf8')).toBe(counter)
      expect(fs.readdirSync(dir).sort()).toEqual(['gate', 'key'])
    })
  }

  it('the last safe fence is granted once, then the key is exhausted', async () => {
    const { root } = await keyWithCounter(String(Number.MAX_SAFE_INTEGER - 1).padStart(20, '0'))
    const lease = await tryAcquireLease({ key: KEY, limit: 2, lockRoot: root })
    expect(lease?.fence).toBe(Number.MAX_SAFE_INTEGER)
    await expect(tryAcquireLease({ key: KEY, limit: 2, lockRoot: root })).rejects.toMatchObject({ code: 'fence_exhausted' })
    expect(await lease?.release()).toBe(true)
  })

  it('a fresh key seeded from a clock a thousand years ahead gets safe, rising fences', async () => {
    const { root } = freshRoot()
    const future = Date.UTC(3026, 0, 1)
    const store = new FileStore({ root, clock: () => future })
    const o = normalizeOptions({ key: KEY, limit: 2, lockRoot: root })
    const a = await acquireWith(store, o, 'wait')
    const b = await acquireWith(store, o, 'wait')
    expect(Number.isSafeInteger(a?.fence)).toBe(true)
    expect(b!.fence).toBeGreaterThan(a!.fence)
    expect(Number.MAX_SAFE_INTEGER - b!.fence).toBeGreaterThan(2 ** 50)
    await a?.release()
    await b?.release()
  })

  it('a record on disk with a fence beyond 2^53 is never undercut: fence_exhausted', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 3, lockRoot: root })
    const path = join(root, keyDirName(KEY), `slot-${lease.slot}`)
    const text = fs.readFileSync(path, 'utf8').replace(/"fence":[0-9]+/, '"fence":36893488147419103232')
    fs.writeFileSync(path, text)
    await expect(tryAcquireLease({ key: KEY, limit: 3, lockRoot: root })).rejects.toMatchObject({ code: 'fence_exhausted' })
    expect(await lease.release()).toBe(true)
  })
})
