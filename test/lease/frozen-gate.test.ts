// Issue 8 defect 7: every wait behind a key's gate is bounded. A gate held by a frozen process
// (SIGSTOP mid-transition, or `flock -x gate sleep 60`) turns inspection, sweeps and async
// release into a typed `key_frozen` error at their deadline, or `aborted` when their signal fires.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, reclaimLeases } from '../../lib/index.js'
import { keyDirName } from '../../lib/lease/root.js'
import { cleanup, freshRoot, removeLeaseLib, trackPid, killTracked } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'frozen'

/**
 * Holds the key's gate from another process until killed, as `flock -x gate sleep` would (one
 * process: the shell takes the lock on fd 9 and becomes the sleep); resolves once it holds.
 */
async function freezeGate(root: string): Promise<number> {
  const gate = join(root, keyDirName(KEY), 'gate')
  const p = spawn('sh', ['-c', 'exec 9<>"$0" && flock -x 9 && echo locked && exec sleep 600', gate], { stdio: ['ignore', 'pipe', 'inherit'] })
  trackPid(p.pid!)
  const lines = createInterface({ input: p.stdout! })
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve())
    p.once('exit', (code) => reject(new Error(`flock exited ${code}`)))
  })
  return p.pid!
}

describe('a key whose gate another process holds frozen', () => {
  it('inspectLeases and reclaimLeases fail with key_frozen at their deadline', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    const pid = await freezeGate(root)
    const opts = { key: KEY, lockRoot: root, waitMs: 300 }
    const err = await inspectLeases(opts).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'LeaseError', code: 'key_frozen' })
    expect(String((err as Error).message)).toMatch(/another process/)
    await expect(reclaimLeases(opts)).rejects.toMatchObject({ code: 'key_frozen' })
    await expect(reclaimLeases({ ...opts, dryRun: true })).rejects.toMatchObject({ code: 'key_frozen' })
    killTracked(pid)
    expect((await inspectLeases(opts)).active).toBe(1)
    expect(await lease.release()).toBe(true)
  })

  it('an aborted signal ends the wait with aborted', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    const pid = await freezeGate(root)
    const ac = new AbortController()
    const pending = inspectLeases({ key: KEY, lockRoot: root, signal: ac.signal })
    ac.abort()
    await expect(pending).rejects.toMatchObject({ code: 'aborted', name: 'AbortError' })
    killTracked(pid)
    expect(await lease.release()).toBe(true)
  })

  it('release() fails with key_frozen and keeps the hold, which a later release frees', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    const pid = await freezeGate(root)
    await expect(lease.release({ waitMs: 300 })).rejects.toMatchObject({ code: 'key_frozen' })
    killTracked(pid)
    expect((await inspectLeases({ key: KEY, lockRoot: root })).active).toBe(1)
    expect(await lease.release()).toBe(true)
    expect((await inspectLeases({ key: KEY, lockRoot: root })).active).toBe(0)
  })
})
