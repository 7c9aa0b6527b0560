// File-store specifics of I2 (proof-only reclaim): renamed holders judged by identity alone, and
// the kernel witness keeping slots whose lock a live child inherited. SIGKILLed and SIGSTOPped
// holders, sweeps and fences are checked for every store in test/conformance/suite.ts.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, tryAcquireLease } from '../../lib/index.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { acquireWith } from '../../lib/lease/engine.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { parseRecord, serializeRecord } from '../../lib/lease/records.js'
import { keyDirName } from '../../lib/lease/root.js'
import { agent, cleanup, freshRoot, holdIn, killTracked, procArgv0, procState, removeLeaseLib, trackPid } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'crash-key'

function slotPath(root: string, slot: number): string {
  return join(root, keyDirName(KEY), `slot-${slot}`)
}

/**
 * Rewrites a held record in place as one without a kernel lock, so judges fall back on identity
 * alone (§3.3: kernel witness not applicable). Same file, same token: the holder still owns it.
 */
function silenceKernelWitness(path: string): void {
  const parsed = parseRecord(fs.readFileSync(path, 'utf8'))
  if (!parsed.ok) throw new Error(parsed.why)
  fs.writeFileSync(path, serializeRecord({ ...parsed.record, kernelLock: false }))
}

describe('renamed holder', () => {
  it('is never reclaimed after rewriting its argv0 with process.title', async () => {
    const { root } = freshRoot()
    const a = await agent()
    await holdIn(a, { key: KEY, limit: 1, lockRoot: root })
    expect(await a.call({ op: 'title', value: 'renamed-holder' })).toEqual({ ev: 'ok' })
    expect(procArgv0(a.pid)).toBe('renamed-holder')

    const st = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
    expect(st.holders[0]).toMatchObject({ state: 'alive', pid: a.pid })
    expect(st.holders[0]?.argv0).not.toBe('renamed-holder')
    expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()

    // Silence the kernel witness (a record without a kernel lock): identity alone must keep it,
    // because the start time still matches whatever argv0 says.
    const path = slotPath(root, 0)
    silenceKernelWitness(path)
    expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
    const again = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
    expect(again.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: a.pid })])
    expect(fs.existsSync(path)).toBe(true)
    expect(await a.call({ op: 'release' })).toMatchObject({ ok: true })
  })
})

describe('holder whose child inherited the slot lock', () => {
  async function setup(): Promise<{ root: string; grandchild: number }> {
    const { root } = freshRoot()
    const a = await agent()
    await holdIn(a, { key: KEY, limit: 1, lockRoot: root })
    const spawned = await a.call({ op: 'inherit' })
    expect(spawned.ev).toBe('spawned')
    const grandchild = spawned.pid as number
    trackPid(grandchild)
    await a.kill()
    return { root, grandchild }
  }

  it('keeps the slot occupied after the parent is SIGKILLed, and frees it when the child exits', async () => {
    const { root, grandchild } = await setup()
    expect(procState(grandchild)).not.toBeNull()
    expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
    const st = await inspectLeases({ key: KEY, lockRoot: root })
    expect(st).toMatchObject({ active: 1, holders: [{ slot: 0, state: 'alive' }] })

    killTracked(grandchild)
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root, waitMs: 20_000 })
    expect(lease.slot).toBe(0)
    expect(await lease.release()).toBe(true)
  })

  it('negative control: an engine that reclaims on suspicion takes the inherited slot', async () => {
    const { root } = await setup()
    const store = new FileStore({ root, faults: { reclaimOnSuspicion: true } })
    const stolen = await acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root }), 'try')
    expect(stolen).not.toBeNull()
    await stolen?.release()
  })
})
