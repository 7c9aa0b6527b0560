// File-store races from §3.4: a lock root deleted mid-acquire (lesson 2) and paths vanishing
// between the steps of a claim (lesson 1). Two contenders reclaiming the same dead slot (lesson 3)
// is checked for every store in test/conformance/suite.ts.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, inspectLeases } from '../../lib/index.js'
import { acquireWith } from '../../lib/lease/engine.js'
import { FileStore, type FileStoreFaults } from '../../lib/lease/file/index.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { keyDirName } from '../../lib/lease/root.js'
import type { ClaimAttempt, LeaseStore } from '../../lib/lease/store.js'
import { agent, cleanup, freshRoot, holdIn, removeLeaseLib, testSignal } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'race'

/** A store whose claim attempts are recorded (kind and time), delegating to a real FileStore. */
function recorded(store: FileStore): { store: LeaseStore; attempts: Array<{ kind: ClaimAttempt['kind']; at: number }> } {
  const attempts: Array<{ kind: ClaimAttempt['kind']; at: number }> = []
  const wrapped: LeaseStore = {
    async claim(req) {
      const at = performance.now()
      const out = await store.claim(req)
      attempts.push({ kind: out.kind, at })
      return out
    },
    release: (h) => store.release(h),
    releaseSync: (h) => store.releaseSync(h),
    inspect: (k, v) => store.inspect(k, v),
    sweep: (k, d, v) => store.sweep(k, d, v),
    watch: (k, w, f) => store.watch(k, w, f),
    close: () => store.close(),
  }
  return { store: wrapped, attempts }
}

describe('lock root deleted while an acquire waits (lesson 2)', () => {
  it('re-creates the root (0700) and grants the waiting acquire', async () => {
    const { root } = freshRoot()
    const holder = await agent()
    await holdIn(holder, { key: KEY, limit: 1, lockRoot: root })
    const { store, attempts } = recorded(new FileStore({ root }))
    let onWaiting!: () => void
    const waiting = new Promise<void>((r) => {
      onWaiting = r
    })
    const pending = acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root, waitMs: 20_000, signal: testSignal() }), 'wait', {
      onBusy: () => onWaiting(),
    })
    pending.catch(() => {}) // aborted at cleanup if this test fails early
    await waiting
    fs.rmSync(root, { recursive: true, force: true })
    const lease = await pending
    expect(lease).not.toBeNull()
    expect(fs.lstatSync(root).mode & 0o7777).toBe(0o700)
    expect(fs.lstatSync(join(root, keyDirName(KEY))).mode & 0o7777).toBe(0o700)
    expect(attempts.at(-1)?.kind).toBe('granted')
    // The old holder's record went with the root: its release finds nothing of its own.
    expect(await holder.call({ op: 'release' })).toMatchObject({ ok: false })
    const st = await inspectLeases({ key: KEY, lockRoot: root, verbose: true })
    expect(st.holders).toEqual([expect.objectContaining({ slot: 0, state: 'alive', pid: process.pid })])
    expect(await lease?.release()).toBe(true)
  })

  it('paces the re-creation while the root keeps vanishing, never hot-looping', async () => {
    const { root } = freshRoot()
    const VANISHINGS = 5
    let left = VANISHINGS
    // A cleaner that strikes inside every claim: the root is gone again before each publish.
    const faults: FileStoreFaults = {
      beforePublish: () => {
        if (left-- > 0) fs.rmSync(root, { recursive: true, force: true })
      },
    }
    const { store, attempts } = recorded(new FileStore({ root, faults }))
    const lease = await acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root, waitMs: 20_000 }), 'wait')
    expect(lease).not.toBeNull()
    expect(attempts.map((a) => a.kind)).toEqual([...Array(VANISHINGS).fill('retry'), 'granted'])
    // Pacing: the engine backs off between re-creations (20 ms doubling, jittered x0.5..1.5, so
    // at least ~300 ms for five); a hot loop would take well under a millisecond per attempt.
    // Only a lower bound is asserted: load can only make it slower.
    const span = (attempts.at(-1)?.at ?? 0) - (attempts[0]?.at ?? 0)
    expect(span).toBeGreaterThan(VANISHINGS * 10)
    expect(fs.lstatSync(root).mode & 0o7777).toBe(0o700)
    expect(await lease?.release()).toBe(true)
  })

  it('gives a typed lease_busy, never a raw errno, when the root vanishes until the deadline', async () => {
    const { root } = freshRoot()
    const store = new FileStore({ root, faults: { beforePublish: () => fs.rmSync(root, { recursive: true, force: true }) } })
    const err = await acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root, waitMs: 50 }), 'wait').then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(LeaseError)
    expect((err as LeaseError).code).toBe('lease_busy')
  })
})

describe('paths vanishing between the steps of a claim (lesson 1)', () => {
  const variants: Array<{ name: string; victim: (root: string) => string }> = [
    { name: 'the key directory', victim: (root) => join(root, keyDirName(KEY)) },
    {
      name: 'the temporary record file',
      victim: (root) => {
        const dir = join(root, keyDirName(KEY))
        const tmp = fs.readdirSync(dir).find((n) => n.startsWith('tmp-'))
        if (!tmp) throw new Error('no temporary file mid-claim')
        return join(dir, tmp)
      },
    },
    { name: 'the gate file', victim: (root) => join(root, keyDirName(KEY), 'gate') },
    { name: 'the whole lock root', victim: (root) => root },
  ]
  for (const v of variants) {
    it(`retries when ${v.name} vanishes before publishing, then grants`, async () => {
      const { root } = freshRoot()
      let once = true
      const faults: FileStoreFaults = {
        beforePublish: () => {
          if (!once) return
          once = false
          fs.rmSync(v.victim(root), { recursive: true, force: true })
        },
      }
      const { store, attempts } = recorded(new FileStore({ root, faults }))
      const lease = await acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root, waitMs: 20_000 }), 'wait')
      expect(attempts.map((a) => a.kind)).toEqual(['retry', 'granted'])
      expect(lease?.slot).toBe(0)
      // Exactly one record and no litter from the failed attempt.
      const names = fs.readdirSync(join(root, keyDirName(KEY))).sort()
      expect(names).toEqual(['gate', 'key', 'slot-0'])
      expect(await lease?.release()).toBe(true)
    })
  }

  it('release and inspect after the key directory vanished under a holder: false and empty, no raw ENOENT', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    fs.rmSync(join(root, keyDirName(KEY)), { recursive: true })
    expect(await inspectLeases({ key: KEY, lockRoot: root })).toEqual({ key: KEY, active: 0, used: 0, waiting: 0, holders: [] })
    expect(await lease.release()).toBe(false)
    const again = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    expect(again.releaseSync()).toBe(true)
  })

  it('releaseSync after the whole root vanished: false', async () => {
    const { root } = freshRoot()
    const lease = await acquireLease({ key: KEY, limit: 1, lockRoot: root })
    fs.rmSync(root, { recursive: true })
    expect(lease.releaseSync()).toBe(false)
  })
})
