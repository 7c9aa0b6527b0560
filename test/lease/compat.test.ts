// A record written by 0.1 (no `lockUntilRemoved`) is still judged by 0.1's rule: a free kernel
// lock with a live recorded identity stays occupied (inconsistent). Only a record that promises
// to keep its lock until removal is reclaimed on a free lock alone.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { hostIdentity } from '../../lib/probes.js'
import { RECORD_VERSION, serializeRecord } from '../../lib/lease/records.js'
import { keyDirName } from '../../lib/lease/root.js'
import { agent, cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'compat'

async function recordOfLiveProcess(root: string, extra: Record<string, unknown>): Promise<void> {
  await (await acquireLease({ key: KEY, limit: 1, lockRoot: root })).release()
  const live = await agent()
  const stat = fs.readFileSync(`/proc/${live.pid}/stat`, 'latin1')
  const starttime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!
  const record = {
    v: RECORD_VERSION, key: KEY, slot: 0, token: 'b'.repeat(32), fence: 7, limit: 1, kernelLock: true,
    acquiredAt: new Date().toISOString(), pid: live.pid, starttime, argv0: 'node', ...hostIdentity(), metadata: {}, ...extra,
  }
  // Nobody holds this file's lock: the recorded process is alive but never locked it.
  fs.writeFileSync(join(root, keyDirName(KEY), 'slot-0'), serializeRecord(record as never), { mode: 0o600 })
}

describe('records from 0.1', () => {
  it('a free lock with a live recorded holder stays occupied and inconsistent', async () => {
    const { root } = freshRoot()
    await recordOfLiveProcess(root, {})
    expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
    const st = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
    expect(st.holders).toMatchObject([{ slot: 0, state: 'alive', inconsistent: true }])
  })

  it('the same record promising its lock until removal is reclaimed', async () => {
    const { root } = freshRoot()
    await recordOfLiveProcess(root, { lockUntilRemoved: true })
    const lease = await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })
    expect(lease).not.toBeNull()
    expect(lease!.fence).toBeGreaterThan(7)
    await lease!.release()
  })
})
