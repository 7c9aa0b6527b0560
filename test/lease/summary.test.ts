// The key's summary (lib/lease/file/summary.ts): the runs arithmetic, and that a summary that does
// not check out is unknown — never empty — so the next claim judges the whole directory.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { selfHolder } from '../../lib/lease/engine.js'
import { FileStore } from '../../lib/lease/file/index.js'
import type { ClaimAttempt, ClaimRequest } from '../../lib/lease/store.js'
import { keyDirName } from '../../lib/lease/root.js'
import { addSlot, emptySummary, lowestFree, readSummary, removeSlot, slotCount, usedWeight, writeSummary } from '../../lib/lease/file/summary.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

describe('summary runs', () => {
  it('counts, merges and splits runs of slots with their weights', () => {
    const s = emptySummary()
    for (const i of [0, 1, 2, 4]) addSlot(s, i, 1)
    addSlot(s, 3, 2)
    expect(s.slots).toEqual([
      [0, 3, 1],
      [3, 1, 2],
      [4, 1, 1],
    ])
    expect(usedWeight(s)).toBe(6)
    expect(slotCount(s)).toBe(5)
    expect(lowestFree(s)).toBe(5)
    expect(removeSlot(s, 1)).toBe(1)
    expect(lowestFree(s)).toBe(1)
    expect(removeSlot(s, 1)).toBeNull()
    addSlot(s, 1, 1)
    expect(s.slots[0]).toEqual([0, 3, 1])
    expect(() => addSlot(s, 4, 1)).toThrow(/already counted/)
    // The fault seams' views: weights or counts below an index.
    expect(usedWeight(s, 4)).toBe(5)
    expect(slotCount(s, 4)).toBe(4)
  })
})

describe('a summary that does not check out', () => {
  function gatePath(root: string, key: string): string {
    return join(root, keyDirName(key), 'gate')
  }

  it('is read as unknown, never as empty', () => {
    const { base } = freshRoot()
    const path = join(base, 'gate')
    const fd = fs.openSync(path, 'w+', 0o600)
    try {
      expect(readSummary(fd)).toBeNull()
      const s = emptySummary()
      addSlot(s, 0, 3)
      writeSummary(fd, s)
      expect(readSummary(fd)).toEqual(s)
      // One byte of the body changed: the crc no longer matches.
      const buf = fs.readFileSync(path)
      const at = buf.indexOf('[[0,1,3]]')
      buf[at + 7] = '1'.charCodeAt(0)
      fs.writeFileSync(path, buf)
      expect(readSummary(fd)).toBeNull()
    } finally {
      fs.closeSync(fd)
    }
  })

  it('makes the next claim judge every holder: a torn summary that says "empty" admits nobody extra', async () => {
    const { root } = freshRoot()
    // The live hold sits at slot 1, slot 0 is free: nothing but the summary says the key is full.
    const gone = await acquireLease({ key: 'torn', limit: 2, lockRoot: root })
    const held = await acquireLease({ key: 'torn', limit: 2, lockRoot: root })
    expect(held.slot).toBe(1)
    await gone.release()
    // Overwrite the summary with an empty one whose crc is wrong, but which otherwise says the
    // directory is unchanged since it was written (its mtime and the counter as they are now):
    // only the crc stands between it and a second holder.
    const path = gatePath(root, 'torn')
    const buf = fs.readFileSync(path)
    const dirMtime = fs.lstatSync(join(root, keyDirName('torn')), { bigint: true }).mtimeNs.toString()
    const counter = Number(buf.toString('latin1', 0, 20))
    const body = Buffer.from(JSON.stringify({ ...emptySummary(), dirMtime, counter }))
    const header = Buffer.from(`S1 ${String(body.length).padStart(10, '0')} 00000000\n`, 'latin1')
    const out = Buffer.concat([buf.subarray(0, 64), header, body])
    fs.writeFileSync(path, out)
    expect(await tryAcquireLease({ key: 'torn', limit: 1, lockRoot: root })).toBeNull()
    expect((await inspectLeases({ key: 'torn', lockRoot: root })).active).toBe(1)
    expect(await held.release()).toBe(true)
  })

  it('a record put there by hand at the slot a claim would take is counted, not overwritten', async () => {
    const { root } = freshRoot()
    const first = await acquireLease({ key: 'hand', limit: 2, lockRoot: root })
    await (await acquireLease({ key: 'hand', limit: 2, lockRoot: root })).release()
    // slot-1 is free by the summary; a file appears there without the gate.
    const dir = join(root, keyDirName('hand'))
    fs.writeFileSync(join(dir, 'slot-1'), 'not a record', { mode: 0o600 })
    expect(await tryAcquireLease({ key: 'hand', limit: 2, lockRoot: root })).toBeNull()
    expect(fs.readFileSync(join(dir, 'slot-1'), 'utf8')).toBe('not a record')
    expect(await first.release()).toBe(true)
  })
})

describe('a grant whose summary was never written (its claimer killed in between)', () => {
  const request = (limit: number): ClaimRequest => ({ key: 'k', limit, weight: 1, metadata: {}, holder: selfHolder(), fair: false, mode: 'try', place: null })
  const granted = (a: ClaimAttempt) => {
    if (a.kind !== 'granted') throw new Error(`expected a grant, got ${a.kind}`)
    return a.hold
  }

  it('is not hidden by a release that rewrites the summary: the next claim still counts it', async () => {
    const { root } = freshRoot()
    const normal = new FileStore({ root })
    const killedMidway = new FileStore({ root, faults: { skipSummarySave: true } })
    const first = granted(normal.claimNow(request(2)))
    const unsaved = granted(killedMidway.claimNow(request(2)))
    expect(unsaved.slot).toBe(1)
    // The summary still says "slot 0 only"; this release must not make that look current.
    expect(await normal.release(first)).toBe(true)
    expect(normal.claimNow(request(1)).kind).toBe('busy')
    expect((await inspectLeases({ key: 'k', lockRoot: root })).active).toBe(1)
    expect(await killedMidway.release(unsaved)).toBe(true)
    await normal.close()
    await killedMidway.close()
  })
})
