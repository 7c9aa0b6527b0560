// Lowered limits count every holder (I1, lesson 4), and release removes only the releaser's own
// hold (I5).
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { acquireWith } from '../../lib/lease/engine.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { keyDirName } from '../../lib/lease/root.js'
import { type JsonChild, agent, cleanup, freshRoot, holdIn, removeLeaseLib, testSignal } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'limits'

async function threeHolders(root: string): Promise<JsonChild[]> {
  const kids = await Promise.all([agent(), agent(), agent()])
  // One after another, so holder n has slot n.
  for (const [n, c] of kids.entries()) expect((await holdIn(c, { key: KEY, limit: 3, lockRoot: root })).slot).toBe(n)
  return kids
}

describe('lowering the limit below the current holders', () => {
  it('blocks new acquires until the holders drop below the new limit', async () => {
    const { root } = freshRoot()
    const kids = await threeHolders(root)
    const low = { key: KEY, limit: 1, lockRoot: root }
    expect(await tryAcquireLease(low)).toBeNull()
    // A waiter started now must only be granted after the last of the three released.
    let granted = false
    const waiting = acquireLease({ ...low, waitMs: 20_000, signal: testSignal() }).then((l) => {
      granted = true
      return l
    })
    waiting.catch(() => {}) // aborted at cleanup if this test fails early
    for (const [n, c] of kids.entries()) {
      expect(await c.call({ op: 'release' })).toMatchObject({ ok: true })
      if (n < 2) {
        expect(await tryAcquireLease(low)).toBeNull()
        if (n === 0) expect(await tryAcquireLease({ ...low, limit: 2 })).toBeNull()
        expect(granted).toBe(false)
        expect((await inspectLeases({ key: KEY, lockRoot: root })).active).toBe(2 - n)
      }
    }
    const lease = await waiting
    expect(lease.slot).toBe(0)
    expect(await tryAcquireLease(low)).toBeNull()
    expect(await lease.release()).toBe(true)
  })

  it('a limit of 2 admits once two of three have released', async () => {
    const { root } = freshRoot()
    const kids = await threeHolders(root)
    const two = { key: KEY, limit: 2, lockRoot: root }
    expect(await tryAcquireLease(two)).toBeNull()
    await kids[2]!.call({ op: 'release' })
    expect(await tryAcquireLease(two)).toBeNull()
    await kids[0]!.call({ op: 'release' })
    const lease = await tryAcquireLease(two)
    expect(lease?.slot).toBe(0)
    expect(await tryAcquireLease(two)).toBeNull()
    await lease?.release()
  })

  it('negative control: counting slots by index over-admits (lesson 4)', async () => {
    const { root } = freshRoot()
    const kids = await threeHolders(root)
    await kids[0]!.call({ op: 'release' })
    const store = new FileStore({ root, faults: { countByIndex: true } })
    const lease = await acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root }), 'try')
    // Two holders remain, yet the broken count admits a third under limit 1.
    expect(lease).not.toBeNull()
    await lease?.release()
  })
})

describe('release after our slot was reclaimed and re-granted', () => {
  for (const how of ['release', 'releaseSync'] as const) {
    it(`${how}() returns false and leaves the new holder intact`, async () => {
      const { root } = freshRoot()
      const opts = { key: KEY, limit: 1, lockRoot: root }
      const mine = await acquireLease(opts)
      expect(mine.slot).toBe(0)
      // An operator (or cleaner) removes our record; another process takes the same slot.
      const path = join(root, keyDirName(KEY), 'slot-0')
      fs.unlinkSync(path)
      const other = await agent()
      const g = await holdIn(other, opts)
      expect(g.slot).toBe(0)
      const theirs = fs.readFileSync(path)

      expect(how === 'release' ? await mine.release() : mine.releaseSync()).toBe(false)
      expect(fs.readFileSync(path).equals(theirs)).toBe(true)
      const st = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
      expect(st.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: other.pid, fence: g.fence })])
      // Idempotent: a second release is a no-op too.
      expect(await mine.release()).toBe(false)
      expect(await other.call({ op: 'release' })).toMatchObject({ ok: true })
    })
  }

  it('release returns true exactly once for a lease that was ours', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    expect(await lease.release()).toBe(true)
    expect(await lease.release()).toBe(false)
    expect(lease.releaseSync()).toBe(false)
    expect((await inspectLeases({ key: KEY, lockRoot: root })).active).toBe(0)
  })
})
