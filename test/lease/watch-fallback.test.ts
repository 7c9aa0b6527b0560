// Issue 8 ("also expected"): when no watch of the key's directory can be had (fs.watch fails, e.g.
// at the inotify limits), the engine must not back off as if releases were announced: it keeps
// its short poll ceiling. With a working watch (and the holder's exit watched) it may pause
// longer. Pauses are read through the engine's onPause seam, not timed.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireWith } from '../../lib/lease/engine.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { agent, cleanup, freshRoot, holdIn, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const BUSY_MAX_MS = 100

async function busyPauses(store: FileStore, root: string): Promise<Array<{ ms: number; watched: boolean }>> {
  const pauses: Array<{ ms: number; watched: boolean }> = []
  const o = normalizeOptions({ key: 'w', limit: 1, lockRoot: root, waitMs: 1500 })
  await expect(
    acquireWith(store, o, 'wait', { onPause: (ms, why, watched) => why === 'busy' && pauses.push({ ms, watched }) }),
  ).rejects.toMatchObject({ code: 'lease_busy' })
  return pauses
}

describe('waiting without a directory watch', () => {
  it('keeps the short poll ceiling when fs.watch fails', async () => {
    const { root } = freshRoot()
    const holder = await agent()
    await holdIn(holder, { key: 'w', limit: 1, lockRoot: root })
    const refuse = (): never => {
      const err: NodeJS.ErrnoException = new Error('inotify watch limit reached')
      err.code = 'ENOSPC'
      throw err
    }
    // Both kinds of watch: a key's directory (barging waiters) and a queue place's own file.
    const failing = new FileStore({ root, watchDir: refuse, watchFile: refuse })
    const pauses = await busyPauses(failing, root)
    expect(pauses.length).toBeGreaterThan(5)
    expect(pauses.every((p) => !p.watched)).toBe(true)
    expect(Math.max(...pauses.map((p) => p.ms))).toBeLessThanOrEqual(BUSY_MAX_MS * 1.5)
  })

  it('control: with a working watch and a watched holder, pauses grow past that ceiling', async () => {
    const { root } = freshRoot()
    const holder = await agent()
    await holdIn(holder, { key: 'w', limit: 1, lockRoot: root })
    const pauses = await busyPauses(new FileStore({ root }), root)
    expect(pauses.some((p) => p.watched)).toBe(true)
    expect(Math.max(...pauses.map((p) => p.ms))).toBeGreaterThan(BUSY_MAX_MS * 1.5)
  })
})
