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
      // The counter (the gate file's first 20 bytes; the key's summary follows it) is unchanged.
      expect(fs.readFileSync(join(dir, 'gate'), 'latin1').slice(0, 20)).toBe(counter)
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
    const dir = join(root, keyDirName(KEY))
    // Planted beside the live hold (a record the key's summary never counted: the next claim
    // judges the whole directory).
    const text = fs
      .readFileSync(join(dir, `slot-${lease.slot}`), 'utf8')
      .replace(/"slot":[0-9]+/, '"slot":2')
      .replace(/"fence":[0-9]+/, '"fence":36893488147419103232')
    fs.writeFileSync(join(dir, 'slot-2'), text, { mode: 0o600 })
    await expect(tryAcquireLease({ key: KEY, limit: 3, lockRoot: root })).rejects.toMatchObject({ code: 'fence_exhausted' })
    expect(await lease.release()).toBe(true)
  })
})

describe('fences of reclaimed records (review findings)', () => {
  async function deadRecord(root: string, slot: number, fence: number, limit: number): Promise<string> {
    // A real record, then its holder "gone": a copy whose pid is not a live process and whose lock nobody holds.
    const lease = await acquireLease({ key: KEY, limit, lockRoot: root })
    const dir = join(root, keyDirName(KEY))
    const text = fs.readFileSync(join(dir, `slot-${lease.slot}`), 'utf8')
    await lease.release()
    const dead = text
      .replace(/"slot":[0-9]+/, `"slot":${slot}`)
      .replace(/"fence":[0-9]+/, `"fence":${fence}`)
      .replace(/"pid":[0-9]+/, '"pid":999999999')
    fs.writeFileSync(join(dir, `slot-${slot}`), dead, { mode: 0o600 })
    return dir
  }

  it('a dead record whose fence is beyond 2^53 is not removed, and the claim fails with fence_exhausted', async () => {
    const { root } = freshRoot()
    const dir = await deadRecord(root, 1, 2 ** 60, 2)
    await expect(tryAcquireLease({ key: KEY, limit: 2, lockRoot: root })).rejects.toMatchObject({ code: 'fence_exhausted' })
    expect(fs.existsSync(join(dir, 'slot-1'))).toBe(true)
    await expect(tryAcquireLease({ key: KEY, limit: 2, lockRoot: root })).rejects.toMatchObject({ code: 'fence_exhausted' })
  })

  it('a reclaimed record’s fence is never undercut, even when the claim that reclaimed it was busy', async () => {
    const { root } = freshRoot()
    const high = 2 ** 52 + 12345
    const live = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    const dir = join(root, keyDirName(KEY))
    // Planted after the live holder's grant: a dead holder's record at slot 1 with a high fence.
    const dead = fs
      .readFileSync(join(dir, 'slot-0'), 'utf8')
      .replace(/"slot":0/, '"slot":1')
      .replace(/"fence":[0-9]+/, `"fence":${high}`)
      .replace(/"pid":[0-9]+/, '"pid":999999999')
    fs.writeFileSync(join(dir, 'slot-1'), dead, { mode: 0o600 })
    // limit 1, a live holder at slot 0: this claim reclaims slot 1 and is busy.
    expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
    expect(fs.existsSync(join(dir, 'slot-1'))).toBe(false)
    await live.release()
    const next = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    expect(next.fence).toBeGreaterThan(high)
    await next.release()
  })
})
