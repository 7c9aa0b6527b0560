// Issue 8 defect 17: only entries named as slot records count. A stray file in a key directory
// (.DS_Store, an editor's swap file) never holds a slot; inspection names it as stray. An
// unreadable entry that is named as a slot record still counts (fail closed).
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, reclaimLeases, tryAcquireLease } from '../../lib/index.js'
import { keyDirName } from '../../lib/lease/root.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'stray-key'
const STRAYS = ['.DS_Store', '.slot-0.swp', 'slot-0~', '4913', 'notes.txt', 'slot-x']

describe('stray entries in a key directory', () => {
  it('never count, are shown as stray, and are left alone by sweeps', async () => {
    const { root } = freshRoot()
    await (await acquireLease({ key: KEY, limit: 1, lockRoot: root })).release()
    const dir = join(root, keyDirName(KEY))
    for (const name of STRAYS) fs.writeFileSync(join(dir, name), 'x', { mode: 0o600 })
    fs.mkdirSync(join(dir, 'subdir'))

    const lease = await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })
    expect(lease).not.toBeNull()
    const st = await inspectLeases({ key: KEY, lockRoot: root })
    expect(st.active).toBe(1)
    expect(st.holders).toHaveLength(1)
    expect(st.stray?.sort()).toEqual([...STRAYS, 'subdir'].sort())
    await reclaimLeases({ key: KEY, lockRoot: root })
    for (const name of STRAYS) expect(fs.existsSync(join(dir, name))).toBe(true)
    await lease?.release()
  })

  it('an unreadable entry named as a slot record still counts', async () => {
    const { root } = freshRoot()
    await (await acquireLease({ key: KEY, limit: 1, lockRoot: root })).release()
    fs.writeFileSync(join(root, keyDirName(KEY), 'slot-0'), 'not json', { mode: 0o600 })
    expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
    const st = await inspectLeases({ key: KEY, lockRoot: root })
    expect(st).toMatchObject({ active: 1, holders: [{ slot: 0, state: 'corrupt' }] })
  })
})
