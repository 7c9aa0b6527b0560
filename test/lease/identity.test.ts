// Records judged by identity and by the kernel witness (§2.2, §3.3), written straight to disk in
// the library's own record format: which holders are reclaimed and which stay.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { defaultBinding } from '../../lib/binding.js'
import { acquireLease } from '../../lib/index.js'
import { acquireWith } from '../../lib/lease/engine.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { RECORD_VERSION, type SlotRecord, serializeRecord } from '../../lib/lease/records.js'
import { keyDirName } from '../../lib/lease/root.js'
import { type HostIdentity, capturePidInfo, hostIdentity } from '../../lib/probes.js'
import { cleanup, freshRoot } from '../helpers/lease.js'

const openFds: number[] = []
afterEach(async () => {
  for (const fd of openFds.splice(0)) fs.closeSync(fd)
  await cleanup()
})

const host = hostIdentity()
const me = capturePidInfo(process.pid)
// A live process other than this one (the test runner that forked this worker).
const parent = capturePidInfo(process.ppid)
const OTHER_BOOT = '0b5e55ed-0000-4000-8000-000000000000'
const OTHER_NS = 'pid:[4026599999]'

/** Creates the key's directory, gate and key file the ordinary way (a first acquire/release). */
async function prepare(root: string, key: string): Promise<string> {
  const lease = await acquireLease({ key, limit: 1, lockRoot: root })
  expect(await lease.release()).toBe(true)
  return join(root, keyDirName(key))
}

/** A record of this very process, with overrides. */
function record(key: string, slot: number, over: Partial<SlotRecord>): SlotRecord {
  return {
    v: RECORD_VERSION,
    key,
    slot,
    token: randomBytes(16).toString('hex'),
    fence: 1,
    limit: 1,
    kernelLock: true,
    acquiredAt: new Date().toISOString(),
    pid: process.pid,
    starttime: me.starttime,
    argv0: me.argv0,
    ...host,
    metadata: {},
    ...over,
  }
}

function writeRecord(dir: string, rec: SlotRecord): string {
  const path = join(dir, `slot-${rec.slot}`)
  fs.writeFileSync(path, serializeRecord(rec), { mode: 0o600, flag: 'wx' })
  return path
}

/** Holds a kernel lock on a file from this process, as a live holder (or its child) would. */
function holdKernelLock(path: string): void {
  const fd = fs.openSync(path, 'r')
  openFds.push(fd)
  expect(defaultBinding.binding?.lockExclusiveNB(fd)).toBe(0)
}

interface Case {
  name: string
  over: Partial<SlotRecord>
  /** Someone holds the kernel lock on the record file. */
  locked?: boolean
  /** The judge's own identity, when not the real one. */
  judgeHost?: HostIdentity
  reclaimed: boolean
  state: string
  /** Verbose status flags the holder: kernel free although identity says alive. */
  inconsistent?: boolean
}

const cases: Case[] = [
  {
    name: 'another genuine boot, kernel-locked record, unverifiable holder: dead by reboot (kernel witness n/a)',
    over: { bootId: OTHER_BOOT, pidNamespace: OTHER_NS, kernelLock: true },
    // Even a lock on the file does not speak for another boot's holder.
    locked: true,
    reclaimed: true,
    state: 'dead',
  },
  {
    name: 'this boot, unverifiable holder, no kernel lock: kept',
    over: { pidNamespace: OTHER_NS, kernelLock: false },
    reclaimed: false,
    state: 'unverifiable',
  },
  {
    name: 'this boot, unverifiable holder, kernel lock free: reclaimed on the kernel witness',
    over: { pidNamespace: OTHER_NS, kernelLock: true },
    reclaimed: true,
    state: 'dead',
  },
  {
    name: 'this boot, dead pid, kernel lock held (an inheriting child): kept',
    over: { pid: 0x3fffffff, kernelLock: true },
    locked: true,
    reclaimed: false,
    state: 'alive',
  },
  {
    name: 'sentinel boot id on the record side proves nothing: kept',
    over: { bootId: 'unknown-host', pidNamespace: OTHER_NS, kernelLock: true },
    reclaimed: false,
    state: 'unverifiable',
  },
  {
    name: 'sentinel boot id on the judge side proves nothing: kept',
    over: { bootId: OTHER_BOOT, pidNamespace: OTHER_NS, kernelLock: true },
    judgeHost: { ...host, bootId: 'unknown-vm' },
    reclaimed: false,
    state: 'unverifiable',
  },
  {
    name: 'foreign holder (another hostname, no machine id), no kernel lock: stays',
    over: { hostname: 'some-other-host', machineId: null, kernelLock: false },
    reclaimed: false,
    state: 'foreign',
  },
  {
    name: 'foreign holder (another machine id), another boot: stays',
    over: { machineId: 'f'.repeat(32), bootId: OTHER_BOOT, kernelLock: false },
    reclaimed: false,
    state: 'foreign',
  },
  {
    name: 'another hostname on this very kernel (a container), kernel lock free: reclaimed',
    over: { hostname: 'container-7', kernelLock: true },
    reclaimed: true,
    state: 'dead',
  },
  {
    name: 'invalid pid 0 in an old record, no kernel lock: dead (lesson 8)',
    over: { pid: 0, kernelLock: false },
    reclaimed: true,
    state: 'dead',
  },
  {
    name: 'pid reused (start time differs), no kernel lock: dead',
    over: { starttime: '1', kernelLock: false },
    reclaimed: true,
    state: 'dead',
  },
  {
    name: 'live holder (another process), kernel lock free: kept, reported inconsistent',
    over: { pid: parent.pid, starttime: parent.starttime, argv0: parent.argv0, kernelLock: true },
    reclaimed: false,
    state: 'alive',
    inconsistent: true,
  },
  {
    name: 'a hold of this very process whose lock is free (its descriptor was closed): reclaimed',
    over: { kernelLock: true },
    reclaimed: true,
    state: 'dead',
  },
  {
    name: 'live holder (this process), no kernel lock: kept',
    over: { kernelLock: false },
    reclaimed: false,
    state: 'alive',
  },
]

describe('identity-only and two-witness judgement of on-disk records', () => {
  it.each(cases)('$name', async (c) => {
    if (c.over.machineId && !host.machineId) return // no machine id on this host: rule not testable
    const { root } = freshRoot()
    const key = 'identity'
    const dir = await prepare(root, key)
    const path = writeRecord(dir, record(key, 0, c.over))
    if (c.locked) holdKernelLock(path)
    const store = new FileStore({ root, ...(c.judgeHost ? { classify: { host: c.judgeHost } } : {}) })

    const status = await store.inspect(key, true)
    expect(status.holders).toEqual([expect.objectContaining({ slot: 0, state: c.state })])
    expect(status.holders[0]?.inconsistent).toBe(c.inconsistent)
    expect(status.active).toBe(c.reclaimed ? 0 : 1)
    expect(fs.existsSync(path)).toBe(true) // inspect judges, never reclaims

    const lease = await acquireWith(store, normalizeOptions({ key, limit: 1, lockRoot: root }), 'try')
    if (c.reclaimed) {
      expect(lease).not.toBeNull()
      expect(lease?.slot).toBe(0)
      expect(await lease?.release()).toBe(true)
      expect(fs.existsSync(path)).toBe(false)
    } else {
      expect(lease).toBeNull()
      expect(fs.existsSync(path)).toBe(true)
    }
  })

  it('negative control: reclaimOnSuspicion takes an unverifiable holder that must stay', async () => {
    const { root } = freshRoot()
    const key = 'identity'
    const dir = await prepare(root, key)
    writeRecord(dir, record(key, 0, { pidNamespace: OTHER_NS, kernelLock: false }))
    const store = new FileStore({ root, faults: { reclaimOnSuspicion: true } })
    const lease = await acquireWith(store, normalizeOptions({ key, limit: 1, lockRoot: root }), 'try')
    expect(lease).not.toBeNull()
    await lease?.release()
  })
})
