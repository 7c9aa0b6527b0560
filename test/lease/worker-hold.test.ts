// Issue 8 defect 2: a hold that ends with its worker thread must not wedge the key. The worker's
// descriptors close when it is terminated (the kernel lock frees) while its process, which the
// record names, lives on. Records of library holds say that their lock is never dropped before
// the record is removed, so a free lock is proof that the hold ended.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { JsonChild, cleanup, freshRoot, leaseLib, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

describe('a hold owned by a terminated worker thread', () => {
  it('is reclaimed by the next claimer while the worker’s process lives on', async () => {
    const { root } = freshRoot()
    const opts = { key: 'worker-key', limit: 1, lockRoot: root }
    const proc = new JsonChild('worker-holder.mjs', [await leaseLib(), JSON.stringify(opts)])
    await proc.expect('ready')
    expect(await proc.next()).toMatchObject({ ev: 'held', slot: 0 })
    // While the worker runs, its hold counts.
    expect(await tryAcquireLease(opts)).toBeNull()

    proc.send('terminate')
    await proc.expect('terminated')
    expect(proc.running).toBe(true)
    const before = await inspectLeases({ ...opts, verbose: true })
    expect(before.holders.map((h) => h.state)).toEqual(['dead'])

    const lease = await tryAcquireLease(opts)
    expect(lease).not.toBeNull()
    await lease?.release()
  })
})
