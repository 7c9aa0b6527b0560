// Issue 8 defect 4: a lock root that was deleted and re-created unsafe is re-vetted by a process
// that already used it. Another user's root could have its key directories renamed away under
// us, admitting two holders of a limit-1 key.
import * as fs from 'node:fs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const NOBODY = 65534

function recreate(root: string, mode: number, uid?: number): void {
  fs.rmSync(root, { recursive: true, force: true })
  fs.mkdirSync(root)
  fs.chmodSync(root, mode)
  if (uid !== undefined) fs.chownSync(root, uid, uid)
}

describe('a lock root replaced under a process that already used it', () => {
  it('world-writable: refused with lock_root_unsafe, nothing created in it', async () => {
    const { root } = freshRoot()
    const opts = { key: 'revet', limit: 1, lockRoot: root }
    await (await acquireLease(opts)).release()
    recreate(root, 0o777)
    await expect(acquireLease({ ...opts, waitMs: 1000 })).rejects.toMatchObject({ code: 'lock_root_unsafe' })
    await expect(inspectLeases(opts)).rejects.toMatchObject({ code: 'lock_root_unsafe' })
    expect(fs.readdirSync(root)).toEqual([])
  })

  it.runIf(isRoot)('owned by another user (needs root to chown): refused with lock_root_unsafe', async () => {
    const { root } = freshRoot()
    const opts = { key: 'revet', limit: 1, lockRoot: root }
    await (await acquireLease(opts)).release()
    recreate(root, 0o700, NOBODY)
    await expect(tryAcquireLease(opts)).rejects.toMatchObject({ code: 'lock_root_unsafe' })
    expect(fs.readdirSync(root)).toEqual([])
  })

  it('made world-writable in place: refused on the next claim', async () => {
    const { root } = freshRoot()
    const opts = { key: 'revet', limit: 1, lockRoot: root }
    await (await acquireLease(opts)).release()
    fs.chmodSync(root, 0o777)
    await expect(tryAcquireLease(opts)).rejects.toMatchObject({ code: 'lock_root_unsafe' })
  })

  it('replaced by another private directory of ours: used, after vetting', async () => {
    const { root } = freshRoot()
    const opts = { key: 'revet', limit: 1, lockRoot: root }
    await (await acquireLease(opts)).release()
    recreate(root, 0o700)
    const lease = await tryAcquireLease(opts)
    expect(lease).not.toBeNull()
    await lease?.release()
  })
})
