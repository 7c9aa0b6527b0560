// Pure pieces of the engine: the two-witness judgement table (§3.3), the injective key encoding
// (§3.2), filesystem trust, and the record format.
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { HolderState } from '../../lib/classify.js'
import { acquireLease, tryAcquireLease } from '../../lib/index.js'
import { RECORD_VERSION, type SlotRecord, parseRecord, serializeRecord } from '../../lib/lease/records.js'
import { KEY_DIR_PATTERN, keyDirName, untrustedFilesystem } from '../../lib/lease/root.js'
import { type KernelWitness, judge } from '../../lib/lease/witness.js'
import { cleanup, freshRoot } from '../helpers/lease.js'

afterEach(cleanup)

describe('judge: two witnesses', () => {
  const occupied = (state: string, inconsistent = false) => ({ occupied: true, reclaim: false, state, inconsistent })
  const gone = { occupied: false, reclaim: true, state: 'dead', inconsistent: false }
  const table: Array<[HolderState, KernelWitness, object]> = [
    // Kernel held: occupied whatever identity says (a live child may have inherited the lock).
    ['alive', 'held', occupied('alive')],
    ['dead', 'held', occupied('alive')],
    ['unverifiable', 'held', occupied('alive')],
    ['foreign', 'held', occupied('alive')],
    // Kernel free: reclaim unless identity says alive (then occupied and inconsistent).
    ['alive', 'free', occupied('alive', true)],
    ['dead', 'free', gone],
    ['unverifiable', 'free', gone],
    ['foreign', 'free', gone],
    // Kernel not applicable: identity alone; only dead reclaims.
    ['alive', 'not_applicable', occupied('alive')],
    ['dead', 'not_applicable', gone],
    ['unverifiable', 'not_applicable', occupied('unverifiable')],
    ['foreign', 'not_applicable', occupied('foreign')],
  ]
  it.each(table)('identity %s, kernel %s', (identity, kernel, verdict) => {
    expect(judge(identity, kernel)).toEqual(verdict)
  })

  it('reclaims only when no witness says alive and one proves gone', () => {
    for (const [identity, kernel] of table) {
      const v = judge(identity, kernel)
      const someoneSaysAlive = kernel === 'held' || identity === 'alive'
      const someoneProvesGone = kernel === 'free' || identity === 'dead'
      expect(v.reclaim).toBe(!someoneSaysAlive && someoneProvesGone)
      expect(v.occupied).toBe(!v.reclaim)
    }
  })
})

describe('keyDirName', () => {
  it('is injective where slugs collide', () => {
    const pairs: Array<[string, string]> = [
      ['Foo', 'foo'],
      ['a.b', 'a-b'],
      ['a b', 'a_b'],
      ['a/b', 'a_b'],
      ['x'.repeat(40) + 'one', 'x'.repeat(40) + 'two'],
      ['p'.repeat(200) + 'A', 'p'.repeat(200) + 'a'],
      ['\u00e9', 'e\u0301'], // NFC vs NFD: different strings, different keys
    ]
    for (const [a, b] of pairs) expect(keyDirName(a)).not.toBe(keyDirName(b))
  })

  it('is deterministic, bounded and path-safe', () => {
    for (const key of ['Foo', '../../etc/passwd', '.hidden', '-dash', 'k'.repeat(256), '\u{1F600}', '\0nul', 'a\nb']) {
      const name = keyDirName(key)
      expect(name).toBe(keyDirName(key))
      expect(name).toMatch(KEY_DIR_PATTERN)
      expect(name).not.toContain('/')
      expect(name).not.toContain('..')
      expect(name.length).toBeLessThanOrEqual(2 + 40 + 1 + 32)
    }
    expect(keyDirName('Build-Cache.v2')).toMatch(/^k-build-cache\.v2-[0-9a-f]{32}$/)
  })

  it('is injective over many random keys', () => {
    const seen = new Map<string, string>()
    for (let i = 0; i < 2000; i++) {
      const key = randomBytes(1 + (i % 40)).toString('latin1')
      const name = keyDirName(key)
      const prior = seen.get(name)
      if (prior !== undefined) expect(prior).toBe(key)
      seen.set(name, key)
    }
  })

  it('distinct keys never share slots, even when their slugs collide', async () => {
    const { root } = freshRoot()
    const held = []
    for (const key of ['Foo', 'foo', 'a.b', 'a-b', 'x'.repeat(40) + '1', 'x'.repeat(40) + '2']) {
      const lease = await tryAcquireLease({ key, limit: 1, lockRoot: root })
      expect(lease, key).not.toBeNull()
      held.push(lease)
    }
    for (const l of held) expect(await l?.release()).toBe(true)
    const again = await acquireLease({ key: 'Foo', limit: 1, lockRoot: root })
    expect(await tryAcquireLease({ key: 'Foo', limit: 1, lockRoot: root })).toBeNull()
    await again.release()
  })
})

describe('untrustedFilesystem', () => {
  it('names filesystems whose kernel locks cannot be trusted', () => {
    expect(untrustedFilesystem(0x6969)).toBe('nfs')
    expect(untrustedFilesystem(0xff534d42)).toBe('cifs')
    expect(untrustedFilesystem(0xff534d42 | 0)).toBe('cifs') // as a signed 32-bit value
    expect(untrustedFilesystem(0xfe534d42)).toBe('smb2')
    expect(untrustedFilesystem(0x65735546)).toBe('fuse')
    expect(untrustedFilesystem(0x01021997)).toBe('v9fs')
    expect(untrustedFilesystem(0x6a656a63)).toBe('virtiofs')
  })

  it('trusts local filesystems', () => {
    expect(untrustedFilesystem(0xef53)).toBeNull() // ext4
    expect(untrustedFilesystem(0x01021994)).toBeNull() // tmpfs
    expect(untrustedFilesystem(0x58465342)).toBeNull() // xfs
    expect(untrustedFilesystem(0x9123683e)).toBeNull() // btrfs
  })
})

describe('records', () => {
  const rec: SlotRecord = {
    v: RECORD_VERSION,
    key: 'k',
    slot: 0,
    token: 'f'.repeat(32),
    fence: 7,
    limit: 2,
    kernelLock: true,
    acquiredAt: '2020-01-01T00:00:00.000Z',
    pid: 123,
    starttime: '456',
    argv0: 'node',
    bootId: 'b',
    hostname: 'h',
    machineId: null,
    pidNamespace: null,
    metadata: { a: 1 },
  }

  it('round-trip, padded to a minimum length', () => {
    expect(parseRecord(serializeRecord(rec).toString())).toEqual({ ok: true, record: rec })
    const padded = serializeRecord(rec, 4096)
    expect(padded.length).toBe(4096)
    expect(parseRecord(padded.toString())).toEqual({ ok: true, record: rec })
  })

  it('reject what is not a complete, current record', () => {
    const text = serializeRecord(rec).toString()
    expect(parseRecord(text.slice(0, 20))).toEqual({ ok: false, why: 'not_json' })
    expect(parseRecord('[]')).toEqual({ ok: false, why: 'not_an_object' })
    expect(parseRecord(JSON.stringify({ ...rec, v: 2 }))).toEqual({ ok: false, why: 'future_version' })
    expect(parseRecord(JSON.stringify({ ...rec, v: 0 }))).toEqual({ ok: false, why: 'bad_version' })
    expect(parseRecord(JSON.stringify({ ...rec, token: 'short' }))).toEqual({ ok: false, why: 'bad_fields' })
    expect(parseRecord(JSON.stringify({ ...rec, fence: 1.5 }))).toEqual({ ok: false, why: 'bad_fields' })
    const { pid: _pid, ...noPid } = rec
    expect(parseRecord(JSON.stringify(noPid))).toEqual({ ok: false, why: 'bad_fields' })
  })
})
