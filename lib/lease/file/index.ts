// The file store: one directory per key under a private lock root, a kernel-locked gate file per
// key, one record file per held slot. A claim, under the key's gate:
//   1. vets the lock root again if it changed (or is needed anew), creates the key directory;
//   2. writes the key file once (the exact key, for listing);
//   3. judges every slot record with two witnesses (judge.ts), reclaiming those proven gone;
//   4. counts what is left (holders above a lowered limit and unreadable records included);
//   5. takes the next fence (fence.ts), writes the record under a temporary name, locks it
//      through a read-only descriptor (the hold's kernel witness) and renames it into place,
//      only while the gate it holds is still the live one.
// Release removes the record under the gate when the slot path still names the hold's own file,
// then closes the descriptor. Waiting, deadlines and aborts belong to the engine.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join, resolve } from 'node:path'
import { type NativeBinding, defaultBinding } from '../../binding.js'
import type { ClassifyContext, HolderRecord } from '../../classify.js'
import { type HostIdentity, hostIdentity } from '../../probes.js'
import { RECORD_VERSION, type SlotRecord, serializeRecord, weightOf } from '../records.js'
import { KEY_DIR_PATTERN, type RootInfo, checkPrivateDir, ensureLockRoot, keyDirName, lstatRoot, vetLockRoot } from '../root.js'
import {
  type ClaimAttempt,
  type ClaimRequest,
  GATE_WAIT_MS,
  type GateWait,
  type Hold,
  type LostReason,
  type WakeHint,
  type HandBack,
  type HandOff,
  type HolderStatus,
  type KeyEntry,
  type KeyStatus,
  type KeyWatch,
  type LeaseStore,
  type SweepReport,
} from '../store.js'
import { foldFence, takeFence } from './fence.js'
import { isErrno, removeAfterFailure, sameFile, writeAll } from './fsx.js'
import { GateBusy, type GateDeps, Vanished, gateIsLive, gateSync, gateWaiting, underGate } from './gate.js'
import { type Judged, KEY_FILE, type Scan, holderPids, scanKeyDir } from './judge.js'
import { tryLock } from './lock.js'
import { ExitWatches } from './exitwatch.js'
import { LeaseError } from '../../errors.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants
const ARGV0_MAX = 512
const RECORD_SLACK = 32

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
  /** Wall clock in ms, for a fresh key's fence seed; a seam for tests. */
  clock?: () => number
  /** Directory watcher; a seam for tests (fs.watch can fail, e.g. at the inotify limits). */
  watchDir?: (dir: string, onEvent: () => void) => fs.FSWatcher
  faults?: FileStoreFaults
}

interface FileHandle {
  dir: string
  /** Read-only descriptor carrying the slot's kernel lock. */
  fd: number
  dev: number
  ino: number
  /** The record as written, so a hand-over never needs to trust the file's bytes. */
  record: SlotRecord
  released: boolean
  /** Aborts hold.signal when the hold is found lost. */
  lost: AbortController
  /** A release in flight: a second one (close() racing release()) waits for it. */
  releasing: Promise<boolean> | null
}

/** What a busy answer hands this store's watch: whose exits to watch, and which directory. */
interface FileWake {
  pids: number[] | null
  dirId: string
}

type KeyDirMode = 'create' | 'existing'

export class FileStore implements LeaseStore {
  readonly rootPath: string
  private readonly allowUnsafe: boolean
  private readonly classifyCtx: ClassifyContext
  private readonly native: NativeBinding | null
  private readonly faults: FileStoreFaults
  private readonly clock: () => number
  private readonly watchDir: (dir: string, onEvent: () => void) => fs.FSWatcher
  private readonly uid: number
  private readonly gateDeps: GateDeps
  private root: RootInfo | null = null
  private closed = false
  /** Holds granted by this store and not yet ended. */
  private readonly holds = new Set<FileHandle>()
  readonly handOff: HandOff

  constructor(opts: FileStoreOptions) {
    this.rootPath = resolve(opts.root)
    this.allowUnsafe = opts.allowUnsafeFilesystem === true
    this.classifyCtx = opts.classify ?? {}
    this.native = opts.binding === undefined ? defaultBinding.binding : opts.binding
    this.faults = opts.faults ?? {}
    this.clock = opts.clock ?? Date.now
    this.watchDir = opts.watchDir ?? ((dir, onEvent) => fs.watch(dir, { persistent: false }, () => onEvent()))
    this.uid = typeof process.getuid === 'function' ? process.getuid() : -1
    this.gateDeps = {
      native: this.native,
      uid: this.uid,
      noGate: this.faults.noGate === true,
      vanished: (reason) => this.vanished(reason),
    }
    this.handOff = {
      share: (hold) => this.rewrite(hold, (r) => ({ ...r, lockUntilRemoved: false })),
      lockDescriptor: (hold) => handleOf(hold).fd,
      transfer: (hold, holder) => this.transfer(hold, holder),
      releaseUnlessShared: (hold, wait) => this.releaseUnlessShared(hold, wait),
    }
  }

  // ---- root and key directory -----------------------------------------------------------

  /**
   * The vetted root. Looked at on every use: a root deleted and re-created (perhaps unsafe, by
   * someone else) is vetted again before anything is created in it. `existing` never creates it:
   * null when it is missing.
   */
  private rootInfo(mode: KeyDirMode): RootInfo | null {
    const st = lstatRoot(this.rootPath)
    if (st === null) {
      this.root = null
      if (mode === 'existing') return null
      try {
        this.root = ensureLockRoot(this.rootPath, this.allowUnsafe)
      } catch (err) {
        // Removed again between creating and vetting it (a cleaner at work): retry, paced.
        if (isErrno(err, 'ENOENT')) throw this.vanished('lock_root_vanished')
        throw err
      }
      return this.root
    }
    if (this.root !== null && sameFile(st, this.root)) {
      // Same directory: owner and mode can still change in place.
      checkPrivateDir(this.rootPath, st, 'it')
      return this.root
    }
    this.root = null
    try {
      this.root = vetLockRoot(this.rootPath, st, this.allowUnsafe)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.vanished('lock_root_vanished')
      throw err
    }
    return this.root
  }

  private vanished(reason: string): Vanished {
    this.root = null
    return new Vanished(reason)
  }

  /** The key's directory; null when it (or, for `existing`, the root) does not exist. */
  private keyDir(key: string, mode: KeyDirMode): string | null {
    return this.dirOf(keyDirName(key), mode)
  }

  private dirOf(name: string, mode: KeyDirMode): string | null {
    const root = this.rootInfo(mode)
    if (root === null) return null
    const dir = join(root.path, name)
    let st: fs.Stats
    try {
      st = fs.lstatSync(dir)
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
      if (mode === 'existing') return null
      try {
        fs.mkdirSync(dir, { mode: 0o700 })
      } catch (mkErr) {
        if (isErrno(mkErr, 'ENOENT')) throw this.vanished('lock_root_vanished')
        if (!isErrno(mkErr, 'EEXIST')) throw mkErr
      }
      try {
        st = fs.lstatSync(dir)
      } catch (again) {
        if (isErrno(again, 'ENOENT')) throw this.vanished('lock_root_vanished')
        throw again
      }
    }
    checkPrivateDir(dir, st, 'the key directory')
    return dir
  }

  /** One pass at a key's gate; null when the key (or root) does not exist and mode is `existing`. */
  private pass<T>(dirName: string, mode: KeyDirMode, createGate: boolean, fn: (dir: string, gateFd: number | null) => T): () => T | null {
    return () => {
      const dir = this.dirOf(dirName, mode)
      if (dir === null) return null
      return underGate(this.gateDeps, dir, createGate, (gateFd) => fn(dir, gateFd))
    }
  }

  /** Waits for a key's gate (bounded); a vanished key or root is null, as if never there. */
  private async waitGate<T>(key: string, dirName: string, wait: GateWait | undefined, createGate: boolean, fn: (dir: string, gateFd: number | null) => T): Promise<T | null> {
    try {
      return await gateWaiting(key, wait ?? { waitMs: GATE_WAIT_MS }, this.pass(dirName, 'existing', createGate, fn))
    } catch (err) {
      if (err instanceof Vanished) return null
      throw err
    }
  }

  // ---- judging ------------------------------------------------------------------------

  private host(): HostIdentity {
    return this.classifyCtx.host ?? hostIdentity()
  }

  /**
   * Judges a key directory. With `reclaimWith` (a gate pass that may change the directory), the
   * proven gone are removed during the scan, once the gate is known to be live and their fence
   * folded into the counter.
   */
  private scan(dir: string, probeHeld = false, reclaimWith?: { gateFd: number | null }): Scan {
    const reclaim = reclaimWith
      ? {
          before: (record: SlotRecord | null): void => {
            if (!gateIsLive(dir, reclaimWith.gateFd)) throw this.vanished('lock_root_vanished')
            if (record !== null) this.withCounter(reclaimWith.gateFd, dir, (fd) => foldFence(fd, record.fence))
          },
        }
      : undefined
    return scanKeyDir(
      dir,
      {
        native: this.native,
        uid: this.uid,
        host: this.host(),
        kernelLocks: this.root?.kernelLocks ?? false,
        classify: this.classifyCtx,
        probeHeld,
        reclaimOnSuspicion: this.faults.reclaimOnSuspicion === true,
        ...(reclaim ? { reclaim } : {}),
      },
      () => {
        throw this.vanished('key_directory_vanished')
      },
    )
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

  // ---- claim --------------------------------------------------------------------------

  async claim(req: ClaimRequest): Promise<ClaimAttempt> {
    this.checkOpen()
    return this.claimNow(req)
  }

  /** One claim attempt, synchronously: the gate is never held across an await. */
  claimNow(req: ClaimRequest): ClaimAttempt {
    try {
      const out = this.pass(keyDirName(req.key), 'create', true, (dir, gateFd) => this.claimLocked(dir, gateFd, req))()
      if (out === null) return { kind: 'retry', reason: 'key_directory_missing' }
      return out
    } catch (err) {
      if (err instanceof GateBusy) return { kind: 'contended' }
      if (err instanceof Vanished) return { kind: 'retry', reason: err.reason }
      throw err
    }
  }

  private claimLocked(dir: string, gateFd: number | null, req: ClaimRequest): ClaimAttempt {
    try {
      this.ensureKeyFile(dir, req.key)
      const { judged, temps } = this.scan(dir, false, { gateFd })
      this.cleanTemps(dir, temps)
      let maxFence = 0
      const taken = new Set<number>()
      let active = 0
      let used = 0
      for (const j of judged) {
        if (j.record) maxFence = Math.max(maxFence, j.record.fence)
        if (j.reclaimed) continue
        // Everything left counts, including holders above a lowered limit and unreadable records.
        taken.add(j.slot)
        if (this.faults.countByIndex && j.slot >= req.limit) continue
        active++
        used += j.record ? weightOf(j.record) : 1
      }
      if (used + req.weight > req.limit + (this.faults.overAdmit ?? 0)) {
        const opaque: FileWake = { pids: holderPids(judged, this.host()), dirId: dirId(dir) }
        return { kind: 'busy', active, used, limit: req.limit, wake: { recheckInMs: null, opaque } }
      }
      this.faults.afterScan?.()

      let slot = 0
      while (taken.has(slot)) slot++
      const fence = this.nextFence(gateFd, dir, maxFence)
      const record: SlotRecord = {
        v: RECORD_VERSION,
        key: req.key,
        slot,
        token: randomBytes(16).toString('hex'),
        fence,
        limit: req.limit,
        kernelLock: this.root?.kernelLocks ?? false,
        lockUntilRemoved: true,
        ...(req.weight !== 1 ? { weight: req.weight } : {}),
        acquiredAt: new Date().toISOString(),
        ...holderFields(req.holder),
        metadata: req.metadata,
      }
      return { kind: 'granted', hold: this.publish(dir, gateFd, record) }
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.vanished('lock_root_vanished')
      throw err
    }
  }

  private nextFence(gateFd: number | null, dir: string, seen: number): number {
    return this.withCounter(gateFd, dir, (fd) => takeFence(fd, seen, this.clock()))
  }

  /** Runs fn on the gate file, which holds the fence counter (opened anew only without a gate). */
  private withCounter<T>(gateFd: number | null, dir: string, fn: (fd: number) => T): T {
    const fd = gateFd ?? fs.openSync(join(dir, 'gate'), O_RDWR | O_CREAT | O_NOFOLLOW, 0o600)
    try {
      return fn(fd)
    } finally {
      if (gateFd === null) fs.closeSync(fd)
    }
  }

  /**
   * Writes the record under a temporary name, locks it through a read-only descriptor and renames
   * it into place: a record is never visible half-written, and the descriptor that carries the
   * hold's lock (the one `run` hands to its command) cannot write it. On any failure nothing is
   * left behind.
   */
  private publish(dir: string, gateFd: number | null, record: SlotRecord): Hold {
    const tmp = join(dir, `tmp-${record.token}`)
    let wfd: number | null = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    let rfd: number | null = null
    try {
      // A little slack, so that the in-place rewrites of a hand-over never need new blocks for a
      // few more bytes (a full disk then cannot tear them).
      const body = serializeRecord(record)
      writeAll(wfd, serializeRecord(record, body.length + RECORD_SLACK))
      rfd = fs.openSync(tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
      if (!tryLock(this.native, rfd, tmp)) throw new Error(`fresh slot file ${tmp} is locked by another process`)
      fs.closeSync(wfd)
      wfd = null
      this.faults.beforePublish?.()
      // The count is only as good as the gate: if the lock root was deleted and re-created while
      // we worked (a tmp cleaner), `dir` now names a directory we never counted, where someone
      // may already hold this slot. Publish only under the live gate.
      if (!gateIsLive(dir, gateFd)) throw this.vanished('lock_root_vanished')
      fs.renameSync(tmp, join(dir, `slot-${record.slot}`))
      const st = fs.fstatSync(rfd)
      const lost = new AbortController()
      const handle: FileHandle = { dir, fd: rfd, dev: st.dev, ino: st.ino, record, released: false, lost, releasing: null }
      rfd = null
      this.holds.add(handle)
      const held = (): boolean => !handle.released && this.ownership(handle, record.slot) === 'own'
      return { key: record.key, slot: record.slot, token: record.token, fence: record.fence, weight: weightOf(record), recovered: null, signal: lost.signal, held, handle }
    } catch (err) {
      if (wfd !== null) fs.closeSync(wfd)
      if (rfd !== null) fs.closeSync(rfd)
      removeAfterFailure(tmp)
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
    const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    try {
      try {
        writeAll(fd, Buffer.from(JSON.stringify({ v: RECORD_VERSION, key }) + '\n'))
      } finally {
        fs.closeSync(fd)
      }
      fs.renameSync(tmp, path)
    } catch (err) {
      removeAfterFailure(tmp)
      throw err
    }
  }

  // ---- release ------------------------------------------------------------------------

  /**
   * Whether the slot path still names the hold's own file. The inode is proof enough: our open
   * descriptor keeps it from being reused, so whatever bytes it holds now, it is ours.
   */
  private ownership(h: FileHandle, slot: number): 'own' | 'record_removed' | 'record_replaced' {
    try {
      return sameFile(fs.lstatSync(join(h.dir, `slot-${slot}`)), h) ? 'own' : 'record_replaced'
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 'record_removed'
      throw err
    }
  }

  private releaseLocked(h: FileHandle, hold: Hold): boolean {
    if (this.ownership(h, hold.slot) !== 'own') return false
    try {
      fs.unlinkSync(join(h.dir, `slot-${hold.slot}`))
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false
      throw err
    }
    return true
  }

  private finishRelease(h: FileHandle, lost = false): void {
    // Once only: a descriptor number closed twice could by then name another hold's lock.
    if (h.released) return
    h.released = true
    this.holds.delete(h)
    fs.closeSync(h.fd)
    if (lost) h.lost.abort('lost' satisfies LostReason)
  }

  // On an unexpected error (or a frozen gate) the descriptor stays open: the hold is intact and
  // the release can be retried (closing it would drop the lock while the record stays).
  async release(hold: Hold, wait?: GateWait): Promise<boolean> {
    const h = handleOf(hold)
    if (h.released) return false
    if (h.releasing) return h.releasing.then(() => false)
    const p = this.waitGate(hold.key, keyDirName(hold.key), wait, false, () => (h.released ? false : this.releaseLocked(h, hold))).then(
      (out) => {
        h.releasing = null
        const mine = out === true && !h.released
        this.finishRelease(h, !mine)
        return mine
      },
      (err: unknown) => {
        h.releasing = null
        throw err
      },
    )
    h.releasing = p
    return p
  }

  releaseSync(hold: Hold): boolean {
    const h = handleOf(hold)
    if (h.released) return false
    if (h.releasing) return false
    let out: boolean | null
    try {
      out = gateSync(hold.key, GATE_WAIT_MS, this.pass(keyDirName(hold.key), 'existing', false, () => this.releaseLocked(h, hold)))
    } catch (err) {
      if (!(err instanceof Vanished)) throw err
      out = false
    }
    this.finishRelease(h, out !== true)
    return out === true
  }

  // ---- hand-over to `run` --------------------------------------------------------------

  /**
   * Rewrites the held record in place to name the command `run` started: one write of at least
   * the old length, so a killed writer never tears it. The command may close its copy of the
   * descriptor while it lives, so the record no longer promises a lock until removal.
   */
  private async transfer(hold: Hold, holder: HolderRecord): Promise<boolean> {
    return this.rewrite(hold, (r) => ({ ...r, ...holderFields(holder), lockUntilRemoved: false }))
  }

  /**
   * Rewrites our record in place under the gate: one write of at least the old length, so a
   * killed writer never tears it. If the write fails (a full disk), the old bytes — which fit in
   * what the file already has — are written back, so the record stays readable.
   */
  private async rewrite(hold: Hold, change: (r: SlotRecord) => SlotRecord): Promise<boolean> {
    const h = handleOf(hold)
    if (h.released) return false
    const out = await this.waitGate(hold.key, keyDirName(hold.key), undefined, false, () => {
      if (this.ownership(h, hold.slot) !== 'own') return false
      const path = join(h.dir, `slot-${hold.slot}`)
      const fd = fs.openSync(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK)
      try {
        const st = fs.fstatSync(fd)
        if (!sameFile(st, h)) return false
        const record = change(h.record)
        try {
          writeAll(fd, serializeRecord(record, st.size))
        } catch (err) {
          try {
            writeAll(fd, serializeRecord(h.record, st.size))
          } catch {
            // The original error is the one to report; the record is as the failed write left it.
          }
          throw err
        }
        h.record = record
        return true
      } finally {
        fs.closeSync(fd)
      }
    })
    return out === true
  }

  /**
   * Ends our share of a hold handed to a command, as flock(1) would: drops our lock and removes
   * the record only if no other process still holds the slot's lock. Processes the command left
   * running with the inherited descriptor keep the slot held; the record then stays, and is
   * reclaimed once they are gone (kernel lock free, recorded holder dead).
   */
  private async releaseUnlessShared(hold: Hold, wait?: GateWait): Promise<HandBack> {
    const h = handleOf(hold)
    if (h.released) return { outcome: 'lost', cause: 'record_removed' }
    const out = await this.waitGate(hold.key, keyDirName(hold.key), wait, false, (): HandBack => {
      const owned = this.ownership(h, hold.slot)
      if (owned !== 'own') {
        this.finishRelease(h, true)
        return { outcome: 'lost', cause: owned }
      }
      this.finishRelease(h)
      const path = join(h.dir, `slot-${hold.slot}`)
      const fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
      try {
        if (!tryLock(this.native, fd, path)) return { outcome: 'shared' }
        fs.unlinkSync(path)
        return { outcome: 'released' }
      } finally {
        fs.closeSync(fd)
      }
    })
    if (!h.released) this.finishRelease(h, true)
    return out ?? { outcome: 'lost', cause: 'record_removed' }
  }

  // ---- inspection ---------------------------------------------------------------------

  private status(key: string, judged: Judged[], stray: string[], verbose: boolean): KeyStatus {
    const holders: HolderStatus[] = []
    let active = 0
    let used = 0
    let limit: number | undefined
    for (const j of judged) {
      const weight = j.record ? weightOf(j.record) : 1
      if (j.verdict.occupied) {
        active++
        used += weight
      }
      const h: HolderStatus = { slot: j.slot, state: j.verdict.state, weight }
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
        if (j.lockInherited) h.lockInherited = true
        if (j.problem) h.problem = j.problem
      }
      holders.push(h)
    }
    holders.sort((a, b) => a.slot - b.slot)
    const out: KeyStatus = { key, active, used, waiting: 0, holders }
    if (limit !== undefined) out.limit = limit
    if (stray.length > 0) out.stray = stray.sort()
    return out
  }

  async inspect(key: string, verbose: boolean, wait?: GateWait): Promise<KeyStatus> {
    return this.inspectDir(key, keyDirName(key), verbose, wait)
  }

  /** Inspection by directory name, for key directories whose key file is missing. */
  async inspectDir(label: string, dirName: string, verbose: boolean, wait?: GateWait): Promise<KeyStatus> {
    this.checkOpen()
    const out = await this.waitGate(label, dirName, wait, false, (dir) => {
      const { judged, stray } = this.scan(dir, verbose)
      return this.status(label, judged, stray, verbose)
    })
    return out ?? { key: label, active: 0, used: 0, waiting: 0, holders: [] }
  }

  async sweep(key: string, dryRun: boolean, verbose: boolean, wait?: GateWait): Promise<SweepReport> {
    this.checkOpen()
    const out = await this.waitGate(key, keyDirName(key), wait, !dryRun, (dir, gateFd) => {
      const { judged, temps, stray } = this.scan(dir, verbose, dryRun ? undefined : { gateFd })
      const reclaimed: SweepReport['reclaimed'] = []
      const remaining: Judged[] = []
      if (!dryRun) this.cleanTemps(dir, temps)
      for (const j of judged) {
        if (dryRun ? j.verdict.reclaim : j.reclaimed) {
          const item: { slot: number; pid?: number } = { slot: j.slot }
          if (verbose && j.record) item.pid = j.record.pid
          reclaimed.push(item)
          if (dryRun) remaining.push(j)
        } else {
          remaining.push(j)
        }
      }
      return { key, dryRun, reclaimed, status: this.status(key, remaining, stray, verbose) }
    })
    return out ?? { key, dryRun, reclaimed: [], status: { key, active: 0, used: 0, waiting: 0, holders: [] } }
  }

  /**
   * Watches the key's directory (releases, reclaims) and the exits of the holders the busy answer
   * named (crashes). Null when no directory watch can be had (no directory yet, or the kernel
   * refuses one, e.g. at the inotify limits): the engine then keeps polling briskly.
   */
  async watch(key: string, wake: WakeHint, onChange: () => void): Promise<KeyWatch | null> {
    this.checkOpen()
    let dir: string | null
    let id: string
    try {
      dir = this.keyDir(key, 'existing')
      if (dir === null) return null
      id = dirId(dir)
    } catch {
      return null
    }
    let watcher: fs.FSWatcher | null
    try {
      watcher = this.watchDir(dir, onChange)
    } catch {
      return null
    }
    const exits = new ExitWatches(onChange, this.native)
    let exitsCovered = false
    const w: KeyWatch & { alive: boolean } = {
      alive: true,
      get covered(): boolean {
        return w.alive && exitsCovered
      },
      update(next: WakeHint): void {
        const o = next.opaque as FileWake | undefined
        // Another directory now stands at the key's path: this watch sees nothing there.
        if (o === undefined || o.dirId !== id) {
          w.close()
          return
        }
        exitsCovered = exits.update(o.pids ?? []) && o.pids !== null
      },
      close(): void {
        w.alive = false
        watcher?.close()
        watcher = null
        exits.close()
      },
    }
    // A vanished directory ends the watch; the engine re-arms one on the next busy answer.
    watcher.on('error', () => {
      w.close()
      onChange()
    })
    w.update(wake)
    return w
  }

  /** Every key directory under the root, by key where its key file says which, else by name. */
  listKeyEntries(): KeyEntry[] {
    this.checkOpen()
    const root = this.rootInfo('existing')
    if (root === null) return []
    let names: string[]
    try {
      names = fs.readdirSync(root.path)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return []
      throw err
    }
    const out: KeyEntry[] = []
    for (const name of names.sort()) {
      if (!KEY_DIR_PATTERN.test(name)) continue
      let st: fs.Stats
      try {
        st = fs.lstatSync(join(root.path, name))
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue
        throw err
      }
      if (!st.isDirectory()) continue
      out.push({ key: readKeyFile(join(root.path, name), name), dir: name })
    }
    return out
  }

  /** Keys that have a directory under the root, from their key files. */
  listKeysSync(): string[] {
    return this.listKeyEntries().flatMap((e) => (e.key === null ? [] : [e.key]))
  }

  async listKeys(): Promise<string[]> {
    return this.listKeysSync()
  }

  /**
   * Ends the store: later calls reject with `store_closed`; holds still open are released as
   * release() would. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const h of [...this.holds]) {
      if (h.releasing) {
        await h.releasing.catch(() => false)
        continue
      }
      const hold: Hold = { key: h.record.key, slot: h.record.slot, token: h.record.token, fence: h.record.fence, weight: weightOf(h.record), recovered: null, signal: h.lost.signal, held: () => !h.released, handle: h }
      await this.release(hold)
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new LeaseError('store_closed', 'the lease store was closed')
  }
}

function handleOf(hold: Hold): FileHandle {
  return hold.handle as FileHandle
}

function dirId(dir: string): string {
  const st = fs.lstatSync(dir)
  return `${st.dev}:${st.ino}`
}

/** The exact key a key directory's key file names, or null when it is missing or not ours. */
function readKeyFile(dir: string, name: string): string | null {
  let fd: number
  try {
    fd = fs.openSync(join(dir, KEY_FILE), O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ELOOP', 'EACCES', 'ENXIO')) return null
    throw err
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile() || st.size > 4096) return null
    const raw = JSON.parse(fs.readFileSync(fd, 'utf8')) as { key?: unknown }
    return typeof raw.key === 'string' && keyDirName(raw.key) === name ? raw.key : null
  } catch (err) {
    if (err instanceof SyntaxError) return null
    throw err
  } finally {
    fs.closeSync(fd)
  }
}

export type HolderRecordInput = Pick<SlotRecord, 'pid' | 'starttime' | 'argv0' | 'bootId' | 'hostname' | 'machineId' | 'pidNamespace'>

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

