// Crashed, stopped, renamed and forking holders: a slot is reclaimed only on proof that its
// holder is gone (I2), and the kernel witness keeps slots whose lock is still held by anyone.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { acquireLease, inspectLeases, reclaimLeases, tryAcquireLease } from '../../lib/index.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { acquireWith } from '../../lib/lease/engine.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { parseRecord, serializeRecord } from '../../lib/lease/records.js'
import { keyDirName } from '../../lib/lease/root.js'
import { type JsonChild, agent, cleanup, freshRoot, holdIn, killTracked, procArgv0, procState, removeLeaseLib, trackPid, until } from '../helpers/lease.js'

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

describe('SIGKILLed holder', () => {
  it('frees exactly its own slot; the surviving holder is untouched', async () => {
    const { root } = freshRoot()
    const [a, b] = await Promise.all([agent(), agent()])
    const ga = await holdIn(a, { key: KEY, limit: 2, lockRoot: root })
    const gb = await holdIn(b, { key: KEY, limit: 2, lockRoot: root })
    const before = fs.readFileSync(slotPath(root, gb.slot as number))
    await a.kill()

    const st = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
    const survivor = st.holders.find((h) => h.slot === gb.slot)
    expect(survivor).toMatchObject({ pid: b.pid, state: 'alive', fence: gb.fence })
    expect(st.holders.find((h) => h.slot === ga.slot)?.state).toBe('dead')

    const lease = await acquireLease({ key: KEY, limit: 2, lockRoot: root, waitMs: 10_000 })
    try {
      expect(lease.slot).toBe(ga.slot)
      expect(lease.fence).toBeGreaterThan(gb.fence as number)
      // The survivor's record is byte for byte what it was, and it still holds.
      expect(fs.readFileSync(slotPath(root, gb.slot as number)).equals(before)).toBe(true)
      const after = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
      expect(after.active).toBe(2)
      expect(after.holders.find((h) => h.slot === gb.slot)).toMatchObject({ pid: b.pid, state: 'alive' })
      expect(await tryAcquireLease({ key: KEY, limit: 2, lockRoot: root })).toBeNull()
    } finally {
      await lease.release()
    }
    expect(await b.call({ op: 'release' })).toMatchObject({ ev: 'released', ok: true })
  })
})

describe('reclaimLeases', () => {
  it('sweeps exactly the holders proven gone; a dry run only reports them', async () => {
    const { root } = freshRoot()
    const [a, b] = await Promise.all([agent(), agent()])
    const ga = await holdIn(a, { key: KEY, limit: 2, lockRoot: root })
    const gb = await holdIn(b, { key: KEY, limit: 2, lockRoot: root })
    await a.kill()
    const dry = await reclaimLeases({ key: KEY, lockRoot: root, dryRun: true, verbose: true })
    expect(dry.reclaimed).toEqual([{ slot: ga.slot, pid: a.pid }])
    expect(fs.existsSync(slotPath(root, ga.slot as number))).toBe(true)
    const real = await reclaimLeases({ key: KEY, lockRoot: root })
    expect(real.reclaimed).toEqual([{ slot: ga.slot }])
    expect(real.status).toEqual({ key: KEY, active: 1, limit: 2, holders: [{ slot: gb.slot, state: 'alive' }] })
    expect(fs.existsSync(slotPath(root, ga.slot as number))).toBe(false)
    expect(await b.call({ op: 'release' })).toMatchObject({ ok: true })
  })
})

describe('SIGSTOPped holder', () => {
  it('stays alive while stopped and is reclaimable once SIGKILLed', async () => {
    const { root } = freshRoot()
    const a = await agent()
    await holdIn(a, { key: KEY, limit: 1, lockRoot: root })
    try {
      process.kill(a.pid, 'SIGSTOP')
      await until('the holder to stop', () => procState(a.pid) === 'T')
      expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
      const st = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
      expect(st.active).toBe(1)
      expect(st.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: a.pid })])
      // Still held after a failed claim judged it: nothing was reclaimed.
      expect(fs.existsSync(slotPath(root, 0))).toBe(true)
      // Identity alone (kernel witness silenced) also says alive: a stopped process is not gone.
      silenceKernelWitness(slotPath(root, 0))
      expect(await tryAcquireLease({ key: KEY, limit: 1, lockRoot: root })).toBeNull()
      const again = await inspectLeases({ key: KEY, lockRoot: root })
      expect(again.holders).toEqual([{ slot: 0, state: 'alive' }])
    } finally {
      await a.kill()
    }
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root, waitMs: 10_000 })
    expect(lease.slot).toBe(0)
    expect(await lease.release()).toBe(true)
  })
})

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

describe('fence', () => {
  it('strictly increases across grants in several processes, SIGKILLed holders included', async () => {
    const { root } = freshRoot()
    const opts = { key: KEY, limit: 1, lockRoot: root, waitMs: 20_000 }
    const grants: Array<{ t: bigint; fence: number }> = []
    let agents: JsonChild[] = await Promise.all([agent(), agent(), agent()])
    for (let round = 0; round < 4; round++) {
      for (const [n, c] of agents.entries()) {
        const g = await holdIn(c, opts)
        grants.push({ t: BigInt(g.t as string), fence: g.fence as number })
        if (n === round % 3) {
          // Crash while holding: the next grant must still get a larger fence.
          await c.kill()
        } else {
          expect(await c.call({ op: 'release' })).toMatchObject({ ok: true })
        }
      }
      agents = await Promise.all(agents.map((c) => (c.running ? c : agent())))
    }
    // And from this process, interleaved with the children's grants.
    const mine = await acquireLease(opts)
    grants.push({ t: process.hrtime.bigint(), fence: mine.fence })
    await mine.release()

    grants.sort((x, y) => (x.t < y.t ? -1 : x.t > y.t ? 1 : 0))
    expect(new Set(grants.map((g) => g.fence)).size).toBe(grants.length)
    const fences = grants.map((g) => g.fence)
    expect(fences).toHaveLength(13)
    for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number)
  })

  it('strictly increases across back-to-back grants (many within one clock millisecond)', async () => {
    const { root } = freshRoot()
    const opts = { key: KEY, limit: 1, lockRoot: root }
    let last = 0
    for (let i = 0; i < 100; i++) {
      const lease = await acquireLease(opts)
      expect(lease.fence).toBeGreaterThan(last)
      last = lease.fence
      expect(lease.releaseSync()).toBe(true)
    }
  })
})
