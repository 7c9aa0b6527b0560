// Property-based fuzzing of the lock root: key directories filled with garbage — random,
// truncated, oversized, binary, future-version and wrong-slot files; directories, FIFOs,
// symlinks to files and directories outside the root, dangling symlinks; files of another owner;
// valid-looking records of dead processes, of other boots, of unverifiable and foreign holders,
// and valid records of live processes — under slot-<i>, tmp-<hex32> and random names. Then
// inspect / acquire / release run through the public API, and these must hold:
//   - nothing but a LeaseError is ever thrown;
//   - inspect counts every slot-named entry that is not proven free (garbage included), never an
//     entry named otherwise (stray: issue 8 defect 17), and is read-only;
//     a live process's record whose kernel lock nobody holds still counts (fail closed), unless
//     it is this very process's own (its holds always keep their lock);
//   - a slot is granted exactly when fewer than `limit` entries are occupied;
//   - no symlink is followed: targets outside the root are byte-identical and still there;
//   - the only files deleted are proven-dead slot records and our own temporary files, and every
//     other entry is left exactly as it was (same inode, owner, bytes, link target).
import { execFileSync } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, capturePidInfo, hostIdentity, inspectLeases, isUnknownBootId, tryAcquireLease } from '../lib/index.js'
import { keyDirName } from '../lib/lease/root.js'
import { reapedPid } from './helpers/children.js'

const KEY = 'fuzzed key'
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
const base = fs.mkdtempSync(join(tmpdir(), 'proclease-fuzz-'))
const outside = join(base, 'outside')
let deadPid = 0
let runNo = 0

beforeAll(async () => {
  deadPid = await reapedPid()
  fs.mkdirSync(outside)
})
afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true })
})

// ---- what goes into the key directory ---------------------------------------------------------

const CONTENTS = [
  // Records whose holder is proven gone: reclaimable when named slot-<i> and ours.
  'deadPid',
  // A hold of this very process with its kernel lock free: our own holds keep their locked
  // descriptor open for as long as they live, so this one is provably closed.
  'liveSelf',
  'invalidPid',
  'reusedPid',
  'otherBoot',
  'unverifiableKernelFree',
  // Records that keep their slot.
  'unverifiableNoKernelLock',
  'foreignHost',
  'liveSelfNoKernelLock',
  'liveParent',
  'futureVersion',
  'wrongSlot',
  'truncated',
  'oversized',
  'oversizedDead',
  'binary',
  'empty',
  'notJson',
  'foreignOwnerDead',
  // Not regular files.
  'directory',
  'fifo',
  'symlinkToFile',
  'symlinkToDir',
  'danglingSymlink',
] as const
type Content = (typeof CONTENTS)[number]

const PROVEN_GONE: ReadonlySet<Content> = new Set(['deadPid', 'liveSelf', 'invalidPid', 'reusedPid', 'otherBoot', 'unverifiableKernelFree'])

interface EntrySpec {
  name: string
  content: Content
  bytes: Uint8Array
  cut: number
}

const hex32 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex'))
const nameArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 6 }).map((i) => `slot-${i}`) },
  { weight: 1, arbitrary: fc.constantFrom('slot-01', 'slot-', 'slot-1a', 'slot-0.bak', 'slot-99999999999999999', 'SLOT-0', 'slot-0 ') },
  { weight: 3, arbitrary: hex32.map((h) => `tmp-${h}`) },
  { weight: 1, arbitrary: fc.constantFrom('tmp-abc', `tmp-${'g'.repeat(32)}`, `tmp-${'A'.repeat(32)}`, `tmp-${'0'.repeat(33)}`) },
  {
    weight: 2,
    arbitrary: fc
      .stringMatching(/^[A-Za-z0-9._ -]{1,24}$/)
      .filter((n) => !['gate', 'key', '.', '..'].includes(n)),
  },
)
const entryArb: fc.Arbitrary<EntrySpec> = fc.record({
  name: nameArb,
  content: fc.constantFrom(...CONTENTS),
  bytes: fc.uint8Array({ maxLength: 300 }),
  cut: fc.nat(),
})

const GATE_DAMAGE = ['gateDirectory', 'gateSymlink', 'gateFifo', 'gateForeignOwner', 'keyDirSymlink'] as const
type GateDamage = (typeof GATE_DAMAGE)[number]

interface Scenario {
  entries: EntrySpec[]
  limit: number
  mode: 'try' | 'wait'
  damage: GateDamage | null
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  entries: fc.uniqueArray(entryArb, { selector: (e) => e.name, maxLength: 8 }),
  limit: fc.integer({ min: 1, max: 6 }),
  mode: fc.constantFrom('try', 'wait'),
  damage: fc.option(fc.constantFrom(...GATE_DAMAGE), { freq: 8 }),
})

function slotIndex(name: string): number | null {
  const m = /^slot-(0|[1-9][0-9]{0,14})$/.exec(name)
  return m ? Number(m[1]) : null
}

function record(slot: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const host = hostIdentity()
  return {
    v: 1,
    key: KEY,
    slot,
    token: 'ab'.repeat(16),
    fence: 7,
    limit: 1,
    kernelLock: true,
    acquiredAt: new Date(0).toISOString(),
    pid: deadPid,
    starttime: '12345',
    argv0: 'ghost',
    bootId: host.bootId,
    hostname: host.hostname,
    machineId: host.machineId,
    pidNamespace: host.pidNamespace,
    metadata: { fuzz: true },
    ...over,
  }
}

const json = (r: Record<string, unknown>): Buffer => Buffer.from(`${JSON.stringify(r)}\n`)

/** Creates one entry; returns the outside target it points at, if any. */
function makeEntry(dir: string, e: EntrySpec, run: number): void {
  const path = join(dir, e.name)
  const slot = slotIndex(e.name) ?? 0
  const me = capturePidInfo(process.pid)
  const file = (bytes: Buffer | Uint8Array): void => fs.writeFileSync(path, bytes, { mode: 0o600 })
  switch (e.content) {
    case 'deadPid':
      return file(json(record(slot)))
    case 'invalidPid':
      return file(json(record(slot, { pid: 0 })))
    case 'reusedPid':
      return file(json(record(slot, { pid: process.pid, starttime: `${me.starttime}1` })))
    case 'otherBoot':
      return file(json(record(slot, { bootId: randomUUID() })))
    case 'unverifiableKernelFree':
      return file(json(record(slot, { pid: process.pid, starttime: me.starttime, pidNamespace: 'pid:[elsewhere]' })))
    case 'unverifiableNoKernelLock':
      return file(json(record(slot, { pid: process.pid, starttime: me.starttime, pidNamespace: 'pid:[elsewhere]', kernelLock: false })))
    case 'foreignHost':
      return file(json(record(slot, { hostname: 'another-host.example', bootId: randomUUID(), machineId: 'f'.repeat(32) })))
    case 'liveSelf':
      return file(json(record(slot, { pid: process.pid, starttime: me.starttime })))
    case 'liveSelfNoKernelLock':
      return file(json(record(slot, { pid: process.pid, starttime: me.starttime, kernelLock: false })))
    case 'liveParent':
      return file(json(record(slot, { pid: process.ppid, starttime: capturePidInfo(process.ppid).starttime })))
    case 'futureVersion':
      return file(json(record(slot, { v: 2 })))
    case 'wrongSlot':
      return file(json(record(slot + 1)))
    case 'truncated': {
      const full = JSON.stringify(record(slot))
      return file(Buffer.from(full.slice(0, e.cut % (full.length - 1))))
    }
    case 'oversized':
      return file(Buffer.concat([json(record(slot, { pid: process.pid, starttime: me.starttime })), Buffer.alloc(70 * 1024, 0x20)]))
    case 'oversizedDead':
      return file(Buffer.concat([json(record(slot)), Buffer.alloc(65 * 1024, 0x20)]))
    case 'binary':
      return file(Buffer.concat([Buffer.from([0xff, 0x00]), e.bytes]))
    case 'empty':
      return file(Buffer.alloc(0))
    case 'notJson':
      return file(Buffer.from(`{"v":1,${Buffer.from(e.bytes).toString('latin1')}`))
    case 'foreignOwnerDead':
      file(json(record(slot)))
      if (isRoot) fs.chownSync(path, 65534, 65534)
      return
    case 'directory':
      fs.mkdirSync(path, { mode: 0o700 })
      fs.writeFileSync(join(path, 'inside'), 'inside')
      return
    case 'fifo':
      execFileSync('mkfifo', ['-m', '600', path])
      return
    case 'symlinkToFile': {
      const target = join(outside, `file-${run}-${e.name}`)
      fs.writeFileSync(target, json(record(slot)))
      fs.symlinkSync(target, path)
      return
    }
    case 'symlinkToDir': {
      const target = join(outside, `dir-${run}-${e.name}`)
      fs.mkdirSync(target)
      fs.writeFileSync(join(target, 'precious'), 'precious')
      fs.symlinkSync(target, path)
      return
    }
    case 'danglingSymlink':
      fs.symlinkSync(join(outside, `nowhere-${run}`), path)
      return
  }
}

function damageGate(root: string, dir: string, damage: GateDamage, run: number): void {
  const gate = join(dir, 'gate')
  fs.rmSync(gate, { force: true })
  switch (damage) {
    case 'gateDirectory':
      fs.mkdirSync(gate, { mode: 0o700 })
      return
    case 'gateSymlink': {
      const target = join(outside, `gate-${run}`)
      fs.writeFileSync(target, 'not a gate')
      fs.symlinkSync(target, gate)
      return
    }
    case 'gateFifo':
      execFileSync('mkfifo', ['-m', '600', gate])
      return
    case 'gateForeignOwner':
      fs.writeFileSync(gate, '', { mode: 0o600 })
      if (isRoot) fs.chownSync(gate, 65534, 65534)
      else fs.mkdirSync(`${gate}.x`) // non-root: no foreign owner possible; harmless extra entry
      return
    case 'keyDirSymlink': {
      // The key directory itself is a symlink to a directory outside the root.
      const target = join(outside, `keydir-${run}`)
      fs.renameSync(dir, target)
      fs.symlinkSync(target, dir)
      return
    }
  }
  void root
}

// ---- observing the tree ---------------------------------------------------------------------

interface Seen {
  kind: string
  ino: number
  uid: number
  mode: number
  sha?: string
  link?: string
  children?: string[]
}

function describeTree(dir: string): Map<string, Seen> {
  const out = new Map<string, Seen>()
  for (const name of fs.readdirSync(dir)) {
    const p = join(dir, name)
    const st = fs.lstatSync(p)
    const seen: Seen = { kind: 'other', ino: st.ino, uid: st.uid, mode: st.mode }
    if (st.isSymbolicLink()) {
      seen.kind = 'symlink'
      seen.link = fs.readlinkSync(p)
    } else if (st.isFile()) {
      seen.kind = 'file'
      seen.sha = createHash('sha256').update(fs.readFileSync(p)).digest('hex')
    } else if (st.isDirectory()) {
      seen.kind = 'dir'
      seen.children = fs.readdirSync(p).sort()
    } else if (st.isFIFO()) {
      seen.kind = 'fifo'
    }
    out.set(name, seen)
  }
  return out
}

function describeOutside(): Map<string, Seen> {
  const out = new Map<string, Seen>()
  for (const name of fs.readdirSync(outside)) {
    const p = join(outside, name)
    const st = fs.lstatSync(p)
    if (st.isDirectory()) {
      for (const [child, seen] of describeTree(p)) out.set(`${name}/${child}`, seen)
      out.set(name, { kind: 'dir', ino: st.ino, uid: st.uid, mode: st.mode })
    } else {
      out.set(name, { kind: 'file', ino: st.ino, uid: st.uid, mode: st.mode, sha: createHash('sha256').update(fs.readFileSync(p)).digest('hex') })
    }
  }
  return out
}

/** Only a LeaseError (or nothing) may come out of the library. */
async function typed<T>(what: string, p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; err: LeaseError }> {
  try {
    return { ok: true, value: await p }
  } catch (err) {
    if (!(err instanceof LeaseError)) {
      throw new Error(`${what} threw an untyped error: ${(err as Error)?.stack ?? String(err)}`)
    }
    return { ok: false, err }
  }
}

// ---- the property ---------------------------------------------------------------------------

async function scenario(s: Scenario): Promise<void> {
  const run = runNo++
  const root = join(base, `root-${run}`)
  const opts = { key: KEY, lockRoot: root }
  // A clean key directory first (gate and key files), as a previous user would leave it.
  const first = await acquireLease({ ...opts, limit: 1 })
  expect(await first.release()).toBe(true)
  const dir = join(root, keyDirName(KEY))
  for (const e of s.entries) makeEntry(dir, e, run)
  if (s.damage) damageGate(root, dir, s.damage, run)
  const realDir = s.damage === 'keyDirSymlink' ? fs.realpathSync(dir) : dir

  const before = describeTree(realDir)
  const outsideBefore = describeOutside()

  // What the engine must conclude, entry by entry.
  let expectedActive = 0
  const deletable = new Set<string>()
  for (const e of s.entries) {
    const tmpName = /^tmp-[0-9a-f]{32}$/.test(e.name)
    const seen = before.get(e.name) as Seen
    const ours = seen.uid === process.getuid?.()
    if (tmpName) {
      if (seen.kind === 'file' && ours) deletable.add(e.name)
      continue
    }
    if (slotIndex(e.name) !== null && PROVEN_GONE.has(e.content) && seen.kind === 'file' && ours) {
      deletable.add(e.name)
      continue
    }
    // Not named as a slot record: stray, shown but never counted.
    if (slotIndex(e.name) === null) continue
    expectedActive++
  }

  const pre = await typed('inspect', inspectLeases(opts))
  if (s.damage && !(s.damage === 'gateForeignOwner' && !isRoot)) {
    // A damaged gate or key directory: every operation refuses, nothing is touched.
    expect(pre.ok).toBe(false)
    const acq = await typed('acquire', tryAcquireLease({ ...opts, limit: s.limit }))
    expect(acq.ok).toBe(false)
    expect(describeTree(realDir)).toEqual(before)
    expect(describeOutside()).toEqual(outsideBefore)
    return
  }
  if (!pre.ok) throw pre.err
  expect(pre.value.active).toBe(expectedActive)
  // Inspection is read-only.
  expect(describeTree(realDir)).toEqual(before)

  const acquired =
    s.mode === 'try'
      ? await typed('tryAcquire', tryAcquireLease({ ...opts, limit: s.limit }))
      : await typed('acquire', acquireLease({ ...opts, limit: s.limit, waitMs: 10 }))
  const free = expectedActive < s.limit
  let granted = false
  if (!acquired.ok) {
    expect(acquired.err.code).toBe('lease_busy')
    expect(free).toBe(false)
  } else if (acquired.value === null) {
    expect(free).toBe(false)
  } else {
    // Granted only below the limit, never onto an existing entry's name.
    expect(free).toBe(true)
    const lease = acquired.value
    granted = true
    expect(before.has(`slot-${lease.slot}`) && !deletable.has(`slot-${lease.slot}`)).toBe(false)
    const during = await typed('inspect', inspectLeases(opts))
    if (!during.ok) throw during.err
    expect(during.value.active).toBe(expectedActive + 1)
    const released = await typed('release', lease.release())
    expect(released).toEqual({ ok: true, value: true })
  }
  const post = await typed('inspect', inspectLeases(opts))
  if (!post.ok) throw post.err
  expect(post.value.active).toBe(expectedActive)

  // Deleted: exactly the proven-dead records and our own temporary files. Everything else is
  // exactly as it was, and nothing new is left behind.
  const after = describeTree(realDir)
  const deleted = [...before.keys()].filter((n) => !after.has(n)).sort()
  expect(deleted).toEqual([...deletable].sort())
  // New: at most one takeover notice for each dead holder's record reclaimed (S12).
  const notices = [...after.keys()].filter((n) => !before.has(n) && /^notice-[0-9]+$/.test(n))
  expect(notices.length).toBeLessThanOrEqual(deleted.filter((n) => n.startsWith('slot-')).length)
  for (const [name, seen] of after) {
    if (notices.includes(name)) continue
    // The gate carries the fence counter and the key's summary: it is the one file a claim
    // rewrites in place (the summary on every claim, the counter on a grant).
    const was = before.get(name)
    if (name === 'gate' && was) was.sha = seen.sha
    expect({ name, seen }).toEqual({ name, seen: was })
  }
  // No symlink was followed: what they point at is untouched.
  expect(describeOutside()).toEqual(outsideBefore)
}

describe('fuzzing the lock root', () => {
  it('garbage in key directories never breaks the invariants', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, scenario), { numRuns: 300, verbose: 1 })
  }, 120_000)

  it('covers each kind of garbage under each kind of name at least once (a fixed sweep)', async () => {
    // Property runs are random; this sweep makes sure every content kind meets every name class.
    const names = ['slot-0', 'slot-3', `tmp-${'0a'.repeat(16)}`, 'slot-01', 'stray']
    for (const content of CONTENTS) {
      await scenario({
        entries: names.map((name) => ({ name, content, bytes: new Uint8Array([1, 2, 3]), cut: 17 })),
        limit: 3,
        mode: 'try',
        damage: null,
      })
    }
    for (const damage of GATE_DAMAGE) {
      await scenario({ entries: [{ name: 'slot-0', content: 'deadPid', bytes: new Uint8Array(), cut: 0 }], limit: 2, mode: 'wait', damage })
    }
  }, 60_000)
})
