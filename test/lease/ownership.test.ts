// Issue 8 defect 3 (engine side): a hold is its own file. Release succeeds while the slot's path
// still names the hold's own inode, whatever bytes that file now holds; the descriptor handed
// to `run`'s command carries the lock but cannot write the record.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { leaseInternals } from '../../lib/lease/engine.js'
import { keyDirName } from '../../lib/lease/root.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'own-key'

describe('ownership of a hold', () => {
  it('release frees a slot whose record was overwritten with garbage in place', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    const path = join(root, keyDirName(KEY), `slot-${lease.slot}`)
    fs.writeFileSync(path, 'hi\n') // same inode, bytes replaced
    expect(await lease.release()).toBe(true)
    expect(fs.existsSync(path)).toBe(false)
    const next = await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })
    expect(next).not.toBeNull()
    await next?.release()
  })

  it('release does not remove a record that replaced ours at the same path', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    const path = join(root, keyDirName(KEY), `slot-${lease.slot}`)
    const copy = `${path}.new`
    fs.copyFileSync(path, copy)
    fs.renameSync(copy, path) // another inode now
    expect(await lease.release()).toBe(false)
    expect(fs.existsSync(path)).toBe(true)
  })

  it('the descriptor that carries the slot lock is read-only', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    try {
      const inner = leaseInternals(lease)
      const handOff = inner?.store.handOff
      expect(handOff).toBeDefined()
      const fd = handOff!.lockDescriptor(inner!.hold)
      expect(() => fs.writeSync(fd, 'hi\n')).toThrow(expect.objectContaining({ code: 'EBADF' }))
      const st = await inspectLeases({ key: KEY, lockRoot: root })
      expect(st.holders.map((h) => h.state)).toEqual(['alive'])
    } finally {
      expect(await lease.release()).toBe(true)
    }
  })
})
