// Judging a key directory: each slot record is opened, lock-tested, parsed, judged by the two
// witnesses and closed again before the next one, so the descriptors a transition needs do not
// grow with the number of holders. Entries not named as slot records are stray: never counted,
// never removed, only reported.
import * as fs from 'node:fs'
import { join } from 'node:path'
import type { NativeBinding } from '../../binding.js'
import { type ClassifyContext, classifyHolder } from '../../classify.js'
import { type HostIdentity, isUnknownBootId } from '../../probes.js'
import { MAX_RECORD_BYTES, type SlotRecord, parseRecord } from '../records.js'
import { type KernelWitness, type Verdict, judge } from '../witness.js'
import { isErrno, sameFile } from './fsx.js'
import { GATE } from './gate.js'
import { tryLock } from './lock.js'

export const KEY_FILE = 'key'
export const SLOT_RE = /^slot-(0|[1-9][0-9]{0,14})$/
/** A waiter's place in the key's queue, by ticket (summary.ts); judged like a slot record. */
export const WAIT_RE = /^wait-([1-9][0-9]{0,14})$/
/** A takeover notice: the record of a crashed holder, by its fence, until the next grant takes it. */
export const NOTICE_RE = /^notice-(0|[1-9][0-9]{0,15})$/
export const TMP_RE = /^tmp-[0-9a-f]{32}$/

export const waitName = (ticket: number): string => `wait-${ticket}`
export const noticeName = (fence: number): string => `notice-${fence}`

export interface Judged {
  name: string
  slot: number
  verdict: Verdict
  record: SlotRecord | null
  /** Removed during the scan (a sweeping scan: see JudgeContext.reclaim). */
  reclaimed?: boolean
  problem?: string
  /** Kernel lock held while the recorded holder is proven gone (inspection only). */
  lockInherited?: boolean
  ino: number
  dev: number
}

export interface Scan {
  judged: Judged[]
  /** Queue places, judged like holds (slot = ticket). */
  waits: Judged[]
  /** Fences of the notices present. */
  notices: number[]
  temps: string[]
  stray: string[]
}

export interface JudgeContext {
  native: NativeBinding | null
  uid: number
  host: HostIdentity
  /** Kernel locks on the root's filesystem are trusted. */
  kernelLocks: boolean
  classify: ClassifyContext
  /** Also probe the identity behind a held lock, to report inherited locks (inspection). */
  probeHeld: boolean
  /** Test-only fault: reclaim holders that are merely unverifiable or whose lock is held. */
  reclaimOnSuspicion: boolean
  /**
   * Remove proven-gone records during the scan, while their descriptor is still open (so the
   * inode compared with the path cannot have been freed and reused). `before` runs first and may
   * throw: it checks that the gate is still the live one and folds the record's fence into the
   * counter, so that no fence is lost with the record.
   */
  reclaim?: { before(record: SlotRecord | null, kind: 'slot' | 'wait'): void }
}

const gone: Verdict = { occupied: false, reclaim: true, state: 'dead', inconsistent: false }

function corrupt(name: string, slot: number, problem: string, st?: fs.Stats): Judged {
  return {
    name,
    slot,
    verdict: { occupied: true, reclaim: false, state: 'corrupt', inconsistent: false },
    record: null,
    problem,
    ino: st ? st.ino : 0,
    dev: st ? st.dev : 0,
  }
}

/** Judges every entry of a key directory. Temporary files are returned for cleanup. */
export function scanKeyDir(dir: string, ctx: JudgeContext, onVanished: () => never): Scan {
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) onVanished()
    throw err
  }
  const out: Scan = { judged: [], waits: [], notices: [], temps: [], stray: [] }
  for (const name of names) {
    if (name === GATE || name === KEY_FILE) continue
    if (TMP_RE.test(name)) {
      out.temps.push(name)
      continue
    }
    const m = SLOT_RE.exec(name)
    if (m) {
      const j = judgeEntry(dir, name, Number(m[1]), ctx, 'slot')
      if (j) out.judged.push(j)
      continue
    }
    const w = WAIT_RE.exec(name)
    if (w) {
      const j = judgeEntry(dir, name, Number(w[1]), ctx, 'wait')
      if (j) out.waits.push(j)
      continue
    }
    const n = NOTICE_RE.exec(name)
    if (n && Number.isSafeInteger(Number(n[1]))) {
      out.notices.push(Number(n[1]))
      continue
    }
    out.stray.push(name)
  }
  out.waits.sort((a, b) => a.slot - b.slot)
  out.notices.sort((a, b) => a - b)
  return out
}

/** Judges one queue place by ticket; null when it is not there. */
export function judgeWait(dir: string, ticket: number, ctx: JudgeContext): Judged | null {
  return judgeEntry(dir, waitName(ticket), ticket, ctx, 'wait')
}

/** Judges one slot entry; null when it vanished meanwhile. Holds no descriptor afterwards. */
function judgeEntry(dir: string, name: string, slot: number, ctx: JudgeContext, kind: 'slot' | 'wait'): Judged | null {
  const path = join(dir, name)
  // Never open what is not a regular file: a device or FIFO could block or have side effects.
  let pre: fs.Stats
  try {
    pre = fs.lstatSync(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null
    throw err
  }
  if (pre.isSymbolicLink()) return corrupt(name, slot, 'symlink', pre)
  if (!pre.isFile()) return corrupt(name, slot, 'not_a_file', pre)
  let fd: number
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null
    if (isErrno(err, 'ELOOP')) return corrupt(name, slot, 'symlink')
    if (isErrno(err, 'EACCES', 'EPERM', 'ENXIO')) return corrupt(name, slot, 'unreadable')
    throw err
  }
  try {
    const st = fs.fstatSync(fd)
    // The path may have been swapped between lstat and open; judge only what we opened.
    if (!sameFile(st, pre)) return corrupt(name, slot, 'replaced', st)
    const j = judgeOpen(fd, path, name, slot, st, ctx)
    if (j.verdict.reclaim && ctx.reclaim) {
      ctx.reclaim.before(j.record, kind)
      j.reclaimed = unlinkIfSame(path, st)
    }
    return j
  } finally {
    // Closing also drops the lock a free slot lent us while we judged it.
    fs.closeSync(fd)
  }
}

function judgeOpen(fd: number, path: string, name: string, slot: number, st: fs.Stats, ctx: JudgeContext): Judged {
  if (!st.isFile()) return corrupt(name, slot, 'not_a_file', st)
  if (st.uid !== ctx.uid) return corrupt(name, slot, 'foreign_owner', st)
  if (st.size > MAX_RECORD_BYTES) return corrupt(name, slot, 'oversized', st)

  const kernelFree = tryLock(ctx.native, fd, path)
  const buf = Buffer.alloc(st.size + 1)
  let len = 0
  for (;;) {
    const n = fs.readSync(fd, buf, len, buf.length - len, len)
    if (n === 0) break
    len += n
    if (len === buf.length) return corrupt(name, slot, 'oversized', st)
  }
  const parsed = parseRecord(buf.toString('utf8', 0, len))
  if (!parsed.ok) return corrupt(name, slot, parsed.why, st)
  const record = parsed.record
  if (record.slot !== slot) return corrupt(name, slot, 'slot_mismatch', st)

  const host = ctx.host
  const sameKernel = !isUnknownBootId(record.bootId) && !isUnknownBootId(host.bootId) && record.bootId === host.bootId
  const kernel: KernelWitness = record.kernelLock && sameKernel && ctx.kernelLocks ? (kernelFree ? 'free' : 'held') : 'not_applicable'
  const base = { name, slot, record, ino: st.ino, dev: st.dev }
  const identity = () => classifyHolder(record, { ...ctx.classify, host })

  if (ctx.reclaimOnSuspicion) {
    const id = identity()
    return { ...base, verdict: id === 'alive' ? judge(id, 'held') : gone }
  }
  if (kernel === 'held') {
    // A held kernel lock settles it; inspection also asks who, to tell an inherited lock apart.
    const j: Judged = { ...base, verdict: judge('alive', kernel) }
    if (ctx.probeHeld && identity() === 'dead') j.lockInherited = true
    return j
  }
  // The holder never drops its lock before removing its record: a free lock proves the hold ended.
  if (kernel === 'free' && record.lockUntilRemoved === true) return { ...base, verdict: gone }
  const id = identity()
  let verdict = judge(id, kernel)
  // A 0.1 record of this very process: our holds keep their locked descriptor open, so with the
  // lock free the hold is provably gone (its descriptor was closed). Not for a shared hold
  // (lockUntilRemoved false): the process it was shared with may have dropped the lock.
  if (kernel === 'free' && id === 'alive' && record.pid === process.pid && record.lockUntilRemoved === undefined) verdict = gone
  return { ...base, verdict }
}

/** Removes a proven-dead record, only if the path still names the file we judged (and hold open). */
function unlinkIfSame(path: string, judged: fs.Stats): boolean {
  try {
    if (!sameFile(fs.lstatSync(path), judged)) return false
    fs.unlinkSync(path)
    return true
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false
    throw err
  }
}

/**
 * Pids of the occupying holders, when every one of them is a process of this kernel and pid
 * namespace whose exit a waiter can watch; null otherwise.
 */
export function holderPids(judged: Judged[], host: HostIdentity): number[] | null {
  const pids: number[] = []
  for (const j of judged) {
    if (!j.verdict.occupied) continue
    const r = j.record
    if (!r || !Number.isSafeInteger(r.pid) || r.pid < 1) return null
    if (isUnknownBootId(r.bootId) || r.bootId !== host.bootId || r.pidNamespace !== host.pidNamespace) return null
    pids.push(r.pid)
  }
  return pids
}
