import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { constants as osConstants } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { getSystemErrorName } from 'node:util'
import { type NativeBinding, defaultBinding } from '../binding.js'
import { type ClassifyContext, classifyHolder } from '../classify.js'
import { LeaseError } from '../errors.js'
import { type HostIdentity, hostIdentity, isUnknownBootId } from '../probes.js'
import { RECORD_VERSION, MAX_RECORD_BYTES, type SlotRecord, parseRecord, serializeRecord } from './records.js'
import { type RootInfo, checkPrivateDir, ensureLockRoot, keyDirName } from './root.js'
import type { ClaimAttempt, ClaimRequest, Grant, HolderStatus, KeyStatus, LeaseStore, SweepReport } from './store.js'
import { type KernelWitness, type Verdict, judge } from './witness.js'

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants
const E = osConstants.errno

const GATE = 'gate'
const KEY_FILE = 'key'
const SLOT_RE = /^slot-(0|[1-9][0-9]{0,14})$/
const TMP_RE = /^tmp-[0-9a-f]{32}$/
const FENCE_WIDTH = 20
const ARGV0_MAX = 512

/**
 * Test-only fault seams. Production code never sets them; the public API cannot reach them.
 * They exist so tests and the chaos harness can prove their checks catch a broken engine.
 */
export interface FileStoreFaults {
  /** Skip the gate entirely (transitions interleave). */
  noGate?: boolean
  /** Reclaim slots whose holders are merely unverifiable or whose kernel lock is held. */
  reclaimOnSuspicion?: boolean
  /** Called inside a claim after the record is written to its temporary file, before publishing. */
  beforePublish?: () => void
  /** Called inside a claim after the key directory was judged and counted, before the record is written. */
  afterScan?: () => void
  /** Admit this many holders beyond the limit (over-admission, for the interval checker's negative control). */
  overAdmit?: number
  /** Count only holders whose slot index is below the limit (§3.4 lesson 4: lowered limits over-admit). */
  countByIndex?: boolean
}

export interface FileStoreOptions {
  root: string
  allowUnsafeFilesystem?: boolean
  /** Classification seams (probe and judge identity). */
  classify?: ClassifyContext
  /** The addon; defaults to the package's own. */
  binding?: NativeBinding | null
  faults?: FileStoreFaults
}

interface FileHandle {
  dir: string
  fd: number
  dev: number
  ino: number
  released: boolean
}

interface Judged {
  name: string
  slot: number
  verdict: Verdict
  record: SlotRecord | null
  problem?: string
  fd: number | null
  ino: number
  dev: number
}

function errnoError(errno: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno)
  const err: NodeJS.ErrnoException = new Error(`${syscall} failed: ${code}${path ? ` (${path})` : ''}`)
  err.code = code
  err.errno = -errno
  err.syscall = syscall
  if (path) err.path = path
  return err
}

function isErrno(err: unknown, ...codes: string[]): err is NodeJS.ErrnoException {
  return err instanceof Error && codes.includes((err as NodeJS.ErrnoException).code ?? '')
}

const LOCKS_REFUSED = new Set([E.ENOLCK, E.EOPNOTSUPP, E.ENOTSUP, E.EINVAL, E.ENOSYS])

class GateBusy {}
const BUSY: unique symbol = Symbol('gate busy')
const SYNC_GATE_MAX_MS = 10_000
class Vanished {
  constructor(readonly reason: string) {}
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** The file store: one directory per key, a kernel-locked gate, one record file per slot. */
export class FileStore implements LeaseStore {
  private readonly rootPath: string
  private readonly allowUnsafe: boolean
  private readonly classifyCtx: ClassifyContext
  private readonly native: NativeBinding | null
  private readonly faults: FileStoreFaults
  private root: RootInfo | null = null
  private readonly uid: number

  constructor(opts: FileStoreOptions) {
    this.rootPath = opts.root
    this.allowUnsafe = opts.allowUnsafeFilesystem === true
    this.classifyCtx = opts.classify ?? {}
    this.native = opts.binding === undefined ? defaultBinding.binding : opts.binding
    this.faults = opts.faults ?? {}
    this.uid = typeof process.getuid === 'function' ? process.getuid() : -1
  }

  // ---- kernel locks -------------------------------------------------------------------

  /** True when the lock was taken, false when another open file holds it. */
  private tryLock(fd: number, path: string): boolean {
    if (!this.native) {
      throw new LeaseError('locks_unsupported', 'kernel locks unavailable: the native binding could not be loaded')
    }
    const rc = this.native.lockExclusiveNB(fd)
    if (rc === 0) return true
    if (rc === E.EWOULDBLOCK || rc === E.EAGAIN) return false
    if (LOCKS_REFUSED.has(rc)) {
      throw new LeaseError('locks_unsupported', `the filesystem refuses kernel locks (${getSystemErrorName(-rc)})`)
    }
    throw errnoError(rc, 'flock', path)
  }

  // ---- root and key directory -----------------------------------------------------------

  private rootInfo(): RootInfo {
    if (this.root === null) {
      try {
        this.root = ensureLockRoot(this.rootPath, this.allowUnsafe)
      } catch (err) {
        // Removed again between creating and vetting it (a cleaner at work): retry, paced.
        if (isErrno(err, 'ENOENT')) throw this.rootVanished()
        throw err
      }
    }
    return this.root
  }

  private keyDir(key: string, create: boolean): string | null {
    const root = this.rootInfo()
    const dir = join(root.path, keyDirName(key))
    let st: fs.Stats
    try {
      st = fs.lstatSync(dir)
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
      if (!create) {
        this.checkRootStillThere()
        return null
      }
      try {
        fs.mkdirSync(dir, { mode: 0o700 })
      } catch (mkErr) {
        if (isErrno(mkErr, 'ENOENT')) throw this.rootVanished()
        if (isErrno(mkErr, 'EACCES', 'EPERM', 'EROFS')) {
          throw new LeaseError('lock_root_unwritable', `lock root ${root.path} is not writable (${mkErr.code})`, { cause: mkErr })
        }
        if (!isErrno(mkErr, 'EEXIST')) throw mkErr
      }
      try {
        st = fs.lstatSync(dir)
      } catch (again) {
        if (isErrno(again, 'ENOENT')) throw this.rootVanished()
        throw again
      }
    }
    checkPrivateDir(dir, st, 'the key directory')
    return dir
  }

  private checkRootStillThere(): void {
    try {
      fs.lstatSync(this.rootInfo().path)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.rootVanished()
      throw err
    }
  }

  private rootVanished(): Vanished {
    this.root = null
    return new Vanished('lock_root_vanished')
  }

  // ---- the gate -----------------------------------------------------------------------

  /**
   * Runs fn while holding the key's gate. Throws GateBusy when another process holds it and
   * Vanished when the directory disappeared; returns null for a missing key when !create.
   */
  private withGate<T>(key: string, create: boolean, fn: (dir: string, gateFd: number | null) => T): T | null {
    const dir = this.keyDir(key, create)
    if (dir === null) return null
    if (this.faults.noGate) return fn(dir, null)
    const gatePath = join(dir, GATE)
    let fd: number
    try {
      fd = fs.openSync(gatePath, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o600)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.rootVanished()
      if (isErrno(err, 'ELOOP', 'EISDIR', 'ENXIO')) {
        throw new LeaseError('lock_root_unsafe', `gate file ${gatePath} is not a regular file`)
      }
      throw err
    }
    try {
      if (!this.tryLock(fd, gatePath)) throw new GateBusy()
      // A gate unlinked after we opened it would serialize nothing: lock only the live path.
      const mine = fs.fstatSync(fd)
      let current: fs.Stats
      try {
        current = fs.lstatSync(gatePath)
      } catch (err) {
        if (isErrno(err, 'ENOENT')) throw this.rootVanished()
        throw err
      }
      if (current.ino !== mine.ino || current.dev !== mine.dev) throw new Vanished('gate_replaced')
      if (!mine.isFile() || mine.uid !== this.uid) {
        throw new LeaseError('lock_root_unsafe', `gate file ${gatePath} is not a private regular file`)
      }
      return fn(dir, fd)
    } finally {
      fs.closeSync(fd)
    }
  }

  /** withGate for operations that must complete: waits out other processes' transitions. */
  /** One pass at the gate: the result, or BUSY when another process is mid-transition. */
  private gateOnce<T>(key: string, create: boolean, fn: (dir: string, gateFd: number | null) => T): T | null | typeof BUSY {
    try {
      return this.withGate(key, create, fn)
    } catch (err) {
      if (err instanceof GateBusy || (err instanceof Vanished && err.reason === 'gate_replaced')) return BUSY
      throw err
    }
  }

  /** withGate for operations that must complete: waits out other processes' transitions. */
  private async withGateWaiting<T>(key: string, create: boolean, fn: (dir: string, gateFd: number | null) => T): Promise<T | null> {
    for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
      const out = this.gateOnce(key, create, fn)
      if (out !== BUSY) return out
      await delay(pause * (0.5 + Math.random()))
    }
  }

  /**
   * The synchronous form, for releaseSync and exit. Bounded: a gate holder that is stopped
   * (SIGSTOP) must not hang our exit; the kernel still drops our slot lock when we go.
   */
  private withGateSync<T>(key: string, create: boolean, fn: (dir: string, gateFd: number | null) => T): T | null {
    const deadline = performance.now() + SYNC_GATE_MAX_MS
    for (let pause = 1; ; pause = Math.min(pause * 2, 20)) {
      const out = this.gateOnce(key, create, fn)
      if (out !== BUSY) return out
      if (performance.now() > deadline) {
        const err: NodeJS.ErrnoException = new Error(`gate of the key held by another process for over ${SYNC_GATE_MAX_MS} ms`)
        err.code = 'ETIMEDOUT'
        throw err
      }
      sleepSync(pause)
    }
  }

  // ---- judging slots ------------------------------------------------------------------

  private host(): HostIdentity {
    return this.classifyCtx.host ?? hostIdentity()
  }

  private judgeSlot(dir: string, name: string, slot: number, host: HostIdentity): Judged | null {
    const path = join(dir, name)
    const corrupt = (problem: string, fd: number | null = null, st?: fs.Stats): Judged => ({
      name,
      slot,
      verdict: { occupied: true, reclaim: false, state: 'corrupt', inconsistent: false },
      record: null,
      problem,
      fd,
      ino: st ? st.ino : 0,
      dev: st ? st.dev : 0,
    })
    // Never open what is not a regular file: a device or FIFO could block or have side effects.
    let pre: fs.Stats
    try {
      pre = fs.lstatSync(path)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null
      throw err
    }
    if (pre.isSymbolicLink()) return corrupt('symlink', null, pre)
    if (!pre.isFile()) return corrupt('not_a_file', null, pre)
    let fd: number
    try {
      fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null
      if (isErrno(err, 'ELOOP')) return corrupt('symlink')
      if (isErrno(err, 'EACCES', 'EPERM', 'ENXIO')) return corrupt('unreadable')
      throw err
    }
    try {
      return this.judgeOpen(fd, name, slot, host, corrupt)
    } catch (err) {
      // Never keep a descriptor (and possibly a dead holder's lock) past a failed judgement.
      fs.closeSync(fd)
      throw err
    }
  }

  private judgeOpen(
    fd: number,
    name: string,
    slot: number,
    host: HostIdentity,
    corrupt: (problem: string, fd: number | null, st?: fs.Stats) => Judged,
  ): Judged {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) return corrupt('not_a_file', fd, st)
    if (st.uid !== this.uid) return corrupt('foreign_owner', fd, st)
    if (st.size > MAX_RECORD_BYTES) return corrupt('oversized', fd, st)

    const kernelFree = this.tryLock(fd, name)
    const buf = Buffer.alloc(st.size + 1)
    let len = 0
    for (;;) {
      const n = fs.readSync(fd, buf, len, buf.length - len, len)
      if (n === 0) break
      len += n
      if (len === buf.length) return corrupt('oversized', fd, st)
    }
    const parsed = parseRecord(buf.toString('utf8', 0, len))
    if (!parsed.ok) return corrupt(parsed.why, fd, st)
    const record = parsed.record
    if (record.slot !== slot) return corrupt('slot_mismatch', fd, st)

    const sameKernel = !isUnknownBootId(record.bootId) && !isUnknownBootId(host.bootId) && record.bootId === host.bootId
    const kernel: KernelWitness =
      record.kernelLock && sameKernel && this.rootInfo().kernelLocks ? (kernelFree ? 'free' : 'held') : 'not_applicable'
    let verdict: Verdict
    if (this.faults.reclaimOnSuspicion) {
      const identity = classifyHolder(record, { ...this.classifyCtx, host })
      verdict = identity === 'alive' ? judge(identity, 'held') : { occupied: false, reclaim: true, state: 'dead', inconsistent: false }
    } else if (kernel === 'held') {
      // A held kernel lock settles it: no need to probe the holder's identity.
      verdict = judge('alive', kernel)
    } else {
      const identity = classifyHolder(record, { ...this.classifyCtx, host })
      verdict = judge(identity, kernel)
      // A hold of this very process always keeps its locked descriptor open: with the lock free,
      // the hold is provably gone (its descriptor was closed), so it must not wedge us.
      if (kernel === 'free' && identity === 'alive' && record.pid === process.pid) {
        verdict = { occupied: false, reclaim: true, state: 'dead', inconsistent: false }
      }
    }
    return { name, slot, verdict, record, fd, ino: st.ino, dev: st.dev }
  }

  /** Judges every entry of a key directory. Temporary files are returned for cleanup. */
  private scan(dir: string): { judged: Judged[]; temps: string[] } {
    const host = this.host()
    const judged: Judged[] = []
    const temps: string[] = []
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.rootVanished()
      throw err
    }
    try {
      for (const name of names) {
        if (name === GATE || name === KEY_FILE) continue
        if (TMP_RE.test(name)) {
          temps.push(name)
          continue
        }
        const m = SLOT_RE.exec(name)
        if (!m) {
          // Unknown entries are not ours to judge or delete: they hold a place (fail closed).
          judged.push({
            name,
            slot: -1,
            verdict: { occupied: true, reclaim: false, state: 'corrupt', inconsistent: false },
            record: null,
            problem: 'unknown_entry',
            fd: null,
            ino: 0,
            dev: 0,
          })
          continue
        }
        const j = this.judgeSlot(dir, name, Number(m[1]), host)
        if (j) judged.push(j)
      }
    } catch (err) {
      closeAll(judged)
      throw err
    }
    return { judged, temps }
  }

  /** Removes a proven-dead record, only if the path still names the file we judged. */
  private reclaim(dir: string, j: Judged): boolean {
    const path = join(dir, j.name)
    try {
      const st = fs.lstatSync(path)
      if (st.ino !== j.ino || st.dev !== j.dev) return false
      fs.unlinkSync(path)
      return true
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false
      throw err
    }
  }

  /** Leftovers of writers killed mid-claim: only a gate holder can see them, and it is alone. */
  private cleanTemps(dir: string, temps: string[]): void {
    for (const name of temps) {
      const path = join(dir, name)
      try {
        const st = fs.lstatSync(path)
        if (!st.isFile() || st.uid !== this.uid) continue
        fs.unlinkSync(path)
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err
      }
    }
  }

  // ---- fence --------------------------------------------------------------------------

  /**
   * Next fence: above the stored counter and every fence still on disk. A fresh key starts from
   * the clock in microseconds, so fences keep rising even if the whole lock root is wiped.
   */
  private nextFence(gateFd: number | null, dir: string, seen: number): number {
    const buf = Buffer.alloc(FENCE_WIDTH)
    let stored = 0
    const fd = gateFd ?? fs.openSync(join(dir, GATE), O_RDWR | O_CREAT | O_NOFOLLOW, 0o600)
    try {
      const n = fs.readSync(fd, buf, 0, FENCE_WIDTH, 0)
      const text = buf.toString('ascii', 0, n)
      if (/^[0-9]{1,20}$/.test(text)) stored = Number(text)
      const next = Math.max(stored + 1, seen + 1, stored === 0 ? Date.now() * 1000 : 0)
      writeAll(fd, Buffer.from(String(next).padStart(FENCE_WIDTH, '0')))
      return next
    } finally {
      if (gateFd === null) fs.closeSync(fd)
    }
  }

  // ---- operations ---------------------------------------------------------------------

  tryClaim(req: ClaimRequest): ClaimAttempt {
    try {
      const out = this.withGate(req.key, true, (dir, gateFd) => this.claimLocked(dir, gateFd, req))
      if (out === null) return { kind: 'retry', reason: 'key_directory_missing' }
      return out
    } catch (err) {
      if (err instanceof GateBusy) return { kind: 'contended' }
      if (err instanceof Vanished) return { kind: 'retry', reason: err.reason }
      throw err
    }
  }

  private claimLocked(dir: string, gateFd: number | null, req: ClaimRequest): ClaimAttempt {
    let judged: Judged[] = []
    let grantFd: number | null = null
    try {
      this.ensureKeyFile(dir, req.key)
      const scanned = this.scan(dir)
      judged = scanned.judged
      this.cleanTemps(dir, scanned.temps)
      let maxFence = 0
      const taken = new Set<number>()
      let active = 0
      for (const j of judged) {
        if (j.record) maxFence = Math.max(maxFence, j.record.fence)
        if (j.verdict.reclaim && this.reclaim(dir, j)) continue
        // Everything left counts, including holders above a lowered limit and unreadable entries.
        if (j.slot >= 0) taken.add(j.slot)
        if (this.faults.countByIndex && j.slot >= req.limit) continue
        active++
      }
      if (active >= req.limit + (this.faults.overAdmit ?? 0)) return { kind: 'busy', active, limit: req.limit, holderPids: this.holderPids(judged) }
      this.faults.afterScan?.()

      let slot = 0
      while (taken.has(slot)) slot++
      const token = randomBytes(16).toString('hex')
      const fence = this.nextFence(gateFd, dir, maxFence)
      const record: SlotRecord = {
        v: RECORD_VERSION,
        key: req.key,
        slot,
        token,
        fence,
        limit: req.limit,
        kernelLock: this.rootInfo().kernelLocks,
        acquiredAt: new Date().toISOString(),
        ...holderFields(req.holder),
        metadata: req.metadata,
      }
      // Written and locked under a temporary name, then renamed: a record is never visible half-written.
      const tmp = join(dir, `tmp-${token}`)
      grantFd = fs.openSync(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
      if (!this.tryLock(grantFd, tmp)) throw new Error(`fresh slot file ${tmp} is locked by another process`)
      const bytes = serializeRecord(record)
      writeAll(grantFd, bytes)
      this.faults.beforePublish?.()
      // The count above is only as good as the gate: if the lock root was deleted and re-created
      // while we worked (a tmp cleaner), `dir` now names a directory we never counted, where
      // someone may already hold this slot. Publish only under the live gate.
      if (!this.gateIsLive(dir, gateFd)) {
        fs.closeSync(grantFd)
        grantFd = null
        unlinkQuietly(tmp)
        throw this.rootVanished()
      }
      fs.renameSync(tmp, join(dir, `slot-${slot}`))
      const st = fs.fstatSync(grantFd)
      const handle: FileHandle = { dir, fd: grantFd, dev: st.dev, ino: st.ino, released: false }
      grantFd = null
      return { kind: 'granted', grant: { key: req.key, slot, token, fence, handle } }
    } catch (err) {
      if (grantFd !== null) fs.closeSync(grantFd)
      if (isErrno(err, 'ENOENT')) throw this.rootVanished()
      throw err
    } finally {
      closeAll(judged)
    }
  }

  /**
   * Pids of the occupying holders, when every one of them is a process of this kernel and pid
   * namespace whose exit a waiter can watch; null otherwise.
   */
  private holderPids(judged: Judged[]): number[] | null {
    const host = this.host()
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

  /** True while the gate file we hold locked is still the one the key directory's path names. */
  private gateIsLive(dir: string, gateFd: number | null): boolean {
    if (gateFd === null) return true
    const mine = fs.fstatSync(gateFd)
    try {
      const current = fs.lstatSync(join(dir, GATE))
      return current.ino === mine.ino && current.dev === mine.dev
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false
      throw err
    }
  }

  /** Records the exact key once, for listing; written atomically like a record. */
  private ensureKeyFile(dir: string, key: string): void {
    const path = join(dir, KEY_FILE)
    try {
      fs.lstatSync(path)
      return
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
    }
    const tmp = join(dir, `tmp-${randomBytes(16).toString('hex')}`)
    const fd = fs.openSync(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    try {
      const bytes = Buffer.from(JSON.stringify({ v: RECORD_VERSION, key }) + '\n')
      writeAll(fd, bytes)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, path)
  }

  /**
   * Our record, if the slot path still names our locked file and that file still carries our
   * token; null when it is gone or someone else's (wiped by a cleaner, re-granted). Under the gate.
   */
  private ownRecord(dir: string, h: FileHandle, grant: Grant): { path: string; size: number; record: SlotRecord } | null {
    const path = join(dir, `slot-${grant.slot}`)
    let st: fs.Stats
    try {
      st = fs.lstatSync(path)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null
      throw err
    }
    if (st.ino !== h.ino || st.dev !== h.dev) return null
    const buf = Buffer.alloc(Math.min(st.size, MAX_RECORD_BYTES))
    const n = fs.readSync(h.fd, buf, 0, buf.length, 0)
    const parsed = parseRecord(buf.toString('utf8', 0, n))
    if (!parsed.ok || parsed.record.token !== grant.token) return null
    return { path, size: st.size, record: parsed.record }
  }

  private releaseLocked(h: FileHandle, grant: Grant): boolean {
    const own = this.ownRecord(h.dir, h, grant)
    if (own === null) return false
    try {
      fs.unlinkSync(own.path)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false
      throw err
    }
    return true
  }

  private finishRelease(h: FileHandle): void {
    h.released = true
    fs.closeSync(h.fd)
  }

  // On an unexpected error the descriptor stays open: the hold is intact and the release can be
  // retried (closing it would leave a record no witness could clear while we live).
  async release(grant: Grant): Promise<boolean> {
    const h = grant.handle as FileHandle
    if (h.released) return false
    let out: boolean
    try {
      out = (await this.withGateWaiting(grant.key, false, () => this.releaseLocked(h, grant))) === true
    } catch (err) {
      if (!(err instanceof Vanished)) throw err
      out = false
    }
    this.finishRelease(h)
    return out
  }

  releaseSync(grant: Grant): boolean {
    const h = grant.handle as FileHandle
    if (h.released) return false
    let out: boolean
    try {
      out = this.withGateSync(grant.key, false, () => this.releaseLocked(h, grant)) === true
    } catch (err) {
      if (!(err instanceof Vanished)) throw err
      out = false
    }
    this.finishRelease(h)
    return out
  }

  /**
   * Rewrites a held record in place with a new holder identity (the CLI hands its hold to the
   * command it runs). One write of at least the old length, so a killed writer never tears it.
   */
  async transfer(grant: Grant, holder: HolderRecordInput): Promise<boolean> {
    const h = grant.handle as FileHandle
    if (h.released) return false
    let out: boolean | null
    try {
      out = await this.withGateWaiting(grant.key, false, (dir) => {
        // A wiped or re-granted record is no longer ours, as in release.
        const own = this.ownRecord(dir, h, grant)
        if (own === null) return false
        const bytes = serializeRecord({ ...own.record, ...holderFields(holder) }, own.size)
        writeAll(h.fd, bytes)
        return true
      })
    } catch (err) {
      if (err instanceof Vanished) return false
      throw err
    }
    return out === true
  }

  /**
   * Ends our share of a hold handed to a command (the CLI's `run`), as flock(1) would: drops our
   * lock and removes the record only if no other process still holds the slot's lock. Processes
   * the command left running with the inherited descriptor keep the slot held; the record then
   * stays, and is reclaimed once they are gone (kernel lock free, recorded holder dead).
   */
  async releaseUnlessShared(grant: Grant): Promise<'released' | 'shared' | 'lost'> {
    const h = grant.handle as FileHandle
    if (h.released) return 'lost'
    let out: 'released' | 'shared' | 'lost' | null
    try {
      out = await this.withGateWaiting(grant.key, false, (dir) => {
        const own = this.ownRecord(dir, h, grant)
        if (own === null) return 'lost'
        this.finishRelease(h)
        const fd = fs.openSync(own.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        try {
          if (!this.tryLock(fd, own.path)) return 'shared'
          fs.unlinkSync(own.path)
          return 'released'
        } finally {
          fs.closeSync(fd)
        }
      })
    } catch (err) {
      if (!(err instanceof Vanished)) throw err
      out = 'lost'
    }
    if (!h.released) this.finishRelease(h)
    return out ?? 'lost'
  }

  /** The open descriptor carrying the slot's kernel lock (for handing to a child process). */
  lockDescriptor(grant: Grant): number {
    return (grant.handle as FileHandle).fd
  }

  private status(key: string, judged: Judged[], verbose: boolean): KeyStatus {
    const holders: HolderStatus[] = []
    let active = 0
    let limit: number | undefined
    for (const j of judged) {
      if (j.verdict.occupied) active++
      const h: HolderStatus = { slot: j.slot, state: j.verdict.state }
      if (j.record) limit = Math.max(limit ?? 0, j.record.limit)
      if (verbose) {
        if (j.record) {
          const r = j.record
          Object.assign(h, {
            pid: r.pid,
            starttime: r.starttime,
            argv0: r.argv0,
            hostname: r.hostname,
            acquiredAt: r.acquiredAt,
            fence: r.fence,
            limit: r.limit,
            metadata: r.metadata,
          })
        }
        if (j.verdict.inconsistent) h.inconsistent = true
        if (j.problem) h.problem = j.problem
      }
      holders.push(h)
    }
    holders.sort((a, b) => a.slot - b.slot)
    const out: KeyStatus = { key, active, holders }
    if (limit !== undefined) out.limit = limit
    return out
  }

  /** Gate for read-mostly operations: a vanished root or key directory simply has no holders. */
  private async gateOrGone<T>(key: string, fn: (dir: string) => T): Promise<T | null> {
    try {
      return await this.withGateWaiting(key, false, fn)
    } catch (err) {
      if (err instanceof Vanished) return null
      throw err
    }
  }

  async inspect(key: string, verbose: boolean): Promise<KeyStatus> {
    const out = await this.gateOrGone(key, (dir) => {
      const { judged } = this.scan(dir)
      try {
        return this.status(key, judged, verbose)
      } finally {
        closeAll(judged)
      }
    })
    return out ?? { key, active: 0, holders: [] }
  }

  async sweep(key: string, dryRun: boolean, verbose: boolean): Promise<SweepReport> {
    const out = await this.gateOrGone(key, (dir) => {
      const { judged, temps } = this.scan(dir)
      try {
        const reclaimed: SweepReport['reclaimed'] = []
        const remaining: Judged[] = []
        if (!dryRun) this.cleanTemps(dir, temps)
        for (const j of judged) {
          if (j.verdict.reclaim && (dryRun || this.reclaim(dir, j))) {
            const item: { slot: number; pid?: number } = { slot: j.slot }
            if (verbose && j.record) item.pid = j.record.pid
            reclaimed.push(item)
            if (dryRun) remaining.push(j)
          } else {
            remaining.push(j)
          }
        }
        return { key, dryRun, reclaimed, status: this.status(key, remaining, verbose) }
      } finally {
        closeAll(judged)
      }
    })
    return out ?? { key, dryRun, reclaimed: [], status: { key, active: 0, holders: [] } }
  }

  watch(key: string, onChange: () => void): () => void {
    let watcher: fs.FSWatcher | null = null
    try {
      const dir = join(this.rootInfo().path, keyDirName(key))
      watcher = fs.watch(dir, { persistent: false }, () => onChange())
      // A vanished directory ends the watch; the engine's backoff carries on without it.
      watcher.on('error', () => {
        watcher?.close()
        watcher = null
        onChange()
      })
    } catch {
      watcher = null
    }
    return () => {
      watcher?.close()
      watcher = null
    }
  }

  /** Keys that have a directory under the root, from their key files. */
  listKeys(): string[] {
    const root = this.rootInfo().path
    const keys: string[] = []
    let names: string[]
    try {
      names = fs.readdirSync(root)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return []
      throw err
    }
    for (const name of names.sort()) {
      if (!name.startsWith('k-')) continue
      try {
        if (!fs.lstatSync(join(root, name)).isDirectory()) continue
        const fd = fs.openSync(join(root, name, KEY_FILE), O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        try {
          const st = fs.fstatSync(fd)
          if (!st.isFile() || st.size > 4096) continue
          const raw = JSON.parse(fs.readFileSync(fd, 'utf8')) as { key?: unknown }
          if (typeof raw.key === 'string' && keyDirName(raw.key) === name) keys.push(raw.key)
        } finally {
          fs.closeSync(fd)
        }
      } catch {
        // A directory without a readable key file is not listable by name; it is skipped.
      }
    }
    return keys
  }
}

export type HolderRecordInput = Pick<
  SlotRecord,
  'pid' | 'starttime' | 'argv0' | 'bootId' | 'hostname' | 'machineId' | 'pidNamespace'
>

function holderFields(h: HolderRecordInput): HolderRecordInput {
  return {
    pid: h.pid,
    starttime: h.starttime,
    argv0: h.argv0 === null ? null : h.argv0.slice(0, ARGV0_MAX),
    bootId: h.bootId,
    hostname: h.hostname,
    machineId: h.machineId,
    pidNamespace: h.pidNamespace,
  }
}

/** Removes a file of ours by path; already gone is fine. */
function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path)
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err
  }
}

/** Writes all of bytes at offset 0; a short write (a full disk) must never publish a cut record. */
function writeAll(fd: number, bytes: Buffer): void {
  let done = 0
  while (done < bytes.length) {
    const n = fs.writeSync(fd, bytes, done, bytes.length - done, done)
    if (n <= 0) throw errnoError(E.ENOSPC, 'write')
    done += n
  }
}

function closeAll(judged: Judged[]): void {
  for (const j of judged) {
    if (j.fd !== null) {
      fs.closeSync(j.fd)
      j.fd = null
    }
  }
}
