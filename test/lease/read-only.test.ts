// Issue 8 defect 9: inspection and dry-run sweeps create nothing. A missing lock root has no keys;
// an existing one is still vetted.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { inspectLeases, listLeaseKeys, reclaimLeases } from '../../lib/index.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

describe('read-only operations on a missing lock root', () => {
  it('report no holders and create nothing, not even a parent', async () => {
    const { base } = freshRoot()
    const root = join(base, 'typo', 'a', 'b', 'c')
    expect(await inspectLeases({ key: 'k', lockRoot: root })).toEqual({ key: 'k', active: 0, used: 0, waiting: 0, holders: [] })
    expect((await reclaimLeases({ key: 'k', lockRoot: root, dryRun: true })).reclaimed).toEqual([])
    expect((await reclaimLeases({ key: 'k', lockRoot: root })).reclaimed).toEqual([])
    expect(listLeaseKeys({ lockRoot: root })).toEqual([])
    expect(fs.readdirSync(base)).toEqual([])
  })

  it('still refuse an existing root that is unsafe', async () => {
    const { base } = freshRoot()
    const root = join(base, 'open')
    fs.mkdirSync(root)
    fs.chmodSync(root, 0o777)
    await expect(inspectLeases({ key: 'k', lockRoot: root })).rejects.toMatchObject({ code: 'lock_root_unsafe' })
    expect(() => listLeaseKeys({ lockRoot: root })).toThrow(expect.objectContaining({ code: 'lock_root_unsafe' }))
  })
})
