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
  type PruneReport,
  type RecoveredHolder,
  type SweepReport,
} from '../store.js'
import { foldFence, readCounter, takeFence } from './fence.js'
import { dropNotice, readNotice, writeNotice } from './notice.js'
import { PRUNING_RE, fenceFloor, raiseFenceFloor, removeEmptied, removeKeyDir } from './prune.js'
import { FilePlace, touchHead, touchNext } from './queue.js'
import { type QueueEntry, type Run, type Summary, addSlot, dequeue, enqueue, lowestFree, readSummary, removeSlot, runsOf, slotCount, usedWeight, writeSummary } from './summary.js'
import { isErrno, removeAfterFailure, sameFile, writeAll } from './fsx.js'
import { GateBusy, type GateDeps, Vanished, gateIsLive, gateOnce, gateSync, gateWaiting, underGate } from './gate.js'
import { type JudgeContext, type Judged, KEY_FILE, SLOT_RE, type Scan, TMP_RE, holderPids, judgeWait, scanKeyDir, waitName } from './judge.js'
import { tryLock } from './lock.js'
import { ExitWatches } from './exitwatch.js'
import { LeaseError } from '../../errors.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants
const ARGV0_MAX = 512
const RECORD_SLACK = 32
/**
 * How often a waiting head judges every holder when their exits are not all watched (more than
 * the exit-watch budget, or holders elsewhere): crash recovery then takes up to this long.
 */
const SCAN_EVERY_MS = 250

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
  /** Claims ignore the queue: they neither take places nor wait for earlier ones. */
  barge?: boolean
  /** Count holds, not their weights. */
  sumByCount?: boolean
  /** A grant leaves the notice it took, so the next grant takes it again. */
  noticeTwice?: boolean
  /** No look at held slots: a lost hold is noticed only when asked. */
  quietLoss?: boolean
  /** Leaving the queue does nothing: the place stays, held, until the process ends. */
  leaveIgnored?: boolean
  /**
   * A claim's pass leaves the summary unwritten after publishing, as a claimer killed between
   * the two would (here its hold stays live, which is what a later reader must not miss).
   */
  skipSummarySave?: boolean
  /** Called by prune under the key's gate, once the key is found idle, before it is removed. */
  beforePruneRemove?: () => void
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
  /** File watcher (queue places); a seam for tests, like watchDir. */
  watchFile?: (path: string, onEvent: () => void) => fs.FSWatcher
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

/** What the claims of one gate pass share. */
interface PassState {
  /** The summary as the claims so far left it (in memory); null: read it from the gate file. */
  s: Summary | null
  /** Changed since last written (or the directory since recorded). */
  unsaved: boolean
  keyFile: boolean
}

interface ClaimBatch {
  items: Array<{ req: ClaimRequest; resolve: (a: ClaimAttempt) => void; reject: (err: unknown) => void }>
  since: number
  pause: number
}

/** How often a store with holds looks whether they are still its own. */
const LOSS_CHECK_MS = 1000

/** How long a batch of claims retries a gate held by another process before answering `contended`. */
const BATCH_CONTENDED_MS = 25

export class FileStore implements LeaseStore {
  readonly rootPath: string
  private readonly allowUnsafe: boolean
  private readonly classifyCtx: ClassifyContext
  private readonly native: NativeBinding | null
  private readonly faults: FileStoreFaults
  private readonly clock: () => number
  private readonly watchDir: (dir: string, onEvent: () => void) => fs.FSWatcher
  private readonly watchFile: (path: string, onEvent: () => void) => fs.FSWatcher
  private readonly uid: number
  private readonly gateDeps: GateDeps
  private root: RootInfo | null = null
  private closed = false
  /** Holds granted by this store and not yet ended. */
  private readonly holds = new Set<FileHandle>()
  /** Looks after this store's holds (watchHolds) while it has any. */
  private lossTimer: NodeJS.Timeout | null = null
  /** Claims waiting for their key's next gate pass, by key directory name. */
  private readonly batches = new Map<string, ClaimBatch>()
  readonly handOff: HandOff

  constructor(opts: FileStoreOptions) {
    this.rootPath = resolve(opts.root)
    this.allowUnsafe = opts.allowUnsafeFilesystem === true
    this.classifyCtx = opts.classify ?? {}
    this.native = opts.binding === undefined ? defaultBinding.binding : opts.binding
    this.faults = opts.faults ?? {}
    this.clock = opts.clock ?? Date.now
    this.watchDir = opts.watchDir ?? ((dir, onEvent) => fs.watch(dir, { persistent: false }, () => onEvent()))
    this.watchFile = opts.watchFile ?? ((path, onEvent) => fs.watch(path, { persistent: false }, () => onEvent()))
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

  /** How the judge sees this store's root; with `reclaimWith`, proven-gone entries are removed. */
  private judgeContext(dir: string, probeHeld: boolean, reclaimWith?: { gateFd: number | null; notices: number[] }): JudgeContext {
    const reclaim = reclaimWith
      ? {
          before: (record: SlotRecord | null, kind: 'slot' | 'wait'): void => {
            if (!gateIsLive(dir, reclaimWith.gateFd)) throw this.vanished('lock_root_vanished')
            if (kind !== 'slot' || record === null) return
            this.withCounter(reclaimWith.gateFd, dir, (fd) => foldFence(fd, record.fence))
            // The next holder learns of this one (S12): the notice is on disk before the record goes.
            writeNotice(dir, record)
            reclaimWith.notices.push(record.fence)
          },
        }
      : undefined
    return {
      native: this.native,
      uid: this.uid,
      host: this.host(),
      kernelLocks: this.root?.kernelLocks ?? false,
      classify: this.classifyCtx,
      probeHeld,
      reclaimOnSuspicion: this.faults.reclaimOnSuspicion === true,
      ...(reclaim ? { reclaim } : {}),
    }
  }

  /** Judges a key directory without changing it (inspection, dry runs). */
  private scan(dir: string, probeHeld = false): Scan {
    return scanKeyDir(dir, this.judgeContext(dir, probeHeld), () => {
      throw this.vanished('key_directory_vanished')
    })
  }

  /**
   * Judges the whole key directory under the gate, removes what is proven gone (leaving takeover
   * notices for dead holders), and writes the summary anew from what is left: exact again, however
   * many killed writers left it over-counting.
   */
  private rebuild(dir: string, gateFd: number | null, gfd: number, prev: Summary | null, probeHeld = false, self: FilePlace | null = null): { s: Summary; scan: Scan } {
    const written: number[] = []
    const scan = scanKeyDir(dir, this.judgeContext(dir, probeHeld, { gateFd, notices: written }), () => {
      throw this.vanished('key_directory_vanished')
    })
    this.cleanTemps(dir, scan.temps)
    const left = scan.judged.filter((j) => !j.reclaimed)
    const queue: QueueEntry[] = []
    for (const j of scan.waits) if (!j.reclaimed && j.record !== null) queue.push([j.slot, weightOf(j.record)])
    const s: Summary = {
      slots: runsOf(left.map((j): [number, number] => [j.slot, j.record ? weightOf(j.record) : 1])),
      queue,
      ticket: Math.max(prev?.ticket ?? 0, ...queue.map(([t]) => t)),
      notices: [...new Set([...scan.notices, ...written])].sort((x, y) => x - y),
      gen: (prev?.gen ?? 0) + 1,
      scannedAt: Math.max(0, Math.floor(Date.now())),
      dirMtime: '',
      counter: 0,
    }
    // A slot freed here is someone's turn: the first waiter's, unless that is us.
    if (written.length > 0 || scan.judged.some((j) => j.reclaimed)) touchHead(dir, s, self?.ticket ?? null)
    this.saveSummary(gfd, dir, s)
    if (self !== null) {
      self.lastScan = performance.now()
      self.scanGen = s.gen
      self.exitFired = false
      self.pids = holderPids(left, this.host())
    }
    return { s, scan }
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

  /**
   * Claims of one key made by this process in the same turn of the event loop share one pass at
   * the gate, in the order they were made; while another process holds the gate, the batch
   * retries together for a moment (and claims made meanwhile join it) before answering
   * `contended`. Many acquires in one process then cost one contender, not many.
   */
  async claim(req: ClaimRequest): Promise<ClaimAttempt> {
    this.checkOpen()
    const dirName = keyDirName(req.key)
    return new Promise<ClaimAttempt>((resolve, reject) => {
      let batch = this.batches.get(dirName)
      if (batch === undefined) {
        batch = { items: [], since: performance.now(), pause: 1 }
        this.batches.set(dirName, batch)
        queueMicrotask(() => this.runBatch(dirName))
      }
      batch.items.push({ req, resolve, reject })
    })
  }

  private runBatch(dirName: string): void {
    const batch = this.batches.get(dirName)
    if (batch === undefined) return
    const items = batch.items
    let answers: Array<{ ok: ClaimAttempt } | { err: unknown }>
    try {
      answers = this.pass(dirName, 'create', true, (dir, gateFd) => this.claimAll(dir, gateFd, items.map((i) => i.req)))() ?? items.map(() => ({ ok: { kind: 'retry', reason: 'key_directory_missing' } }))
    } catch (err) {
      if (err instanceof GateBusy && performance.now() - batch.since < BATCH_CONTENDED_MS) {
        // Try again shortly, as one; claims made meanwhile join.
        setTimeout(() => this.runBatch(dirName), batch.pause * (0.5 + Math.random()))
        batch.pause = Math.min(batch.pause * 2, 8)
        return
      }
      const one = err instanceof GateBusy ? { ok: { kind: 'contended' } as ClaimAttempt } : err instanceof Vanished ? { ok: { kind: 'retry', reason: err.reason } as ClaimAttempt } : { err }
      answers = items.map(() => one)
    }
    this.batches.delete(dirName)
    items.forEach((item, i) => {
      const a = answers[i]
      if (a !== undefined && 'ok' in a) item.resolve(a.ok)
      else item.reject(a?.err)
    })
  }

  /** Decides each claim in turn, under the one gate pass. */
  private claimAll(dir: string, gateFd: number | null, reqs: ClaimRequest[]): Array<{ ok: ClaimAttempt } | { err: unknown }> {
    const out: Array<{ ok: ClaimAttempt } | { err: unknown }> = []
    const pass: PassState = { s: null, unsaved: false, keyFile: false }
    for (const req of reqs) {
      try {
        out.push({ ok: this.claimLocked(dir, gateFd, req, pass) })
      } catch (err) {
        // Whatever it had done, the next claim reads the summary from the file again.
        pass.s = null
        if (!(err instanceof Vanished)) {
          out.push({ err })
          continue
        }
        // The directory went away under us: every claim left must start again.
        while (out.length < reqs.length) out.push({ ok: { kind: 'retry', reason: err.reason } })
        break
      }
    }
    try {
      if (pass.unsaved && pass.s !== null && this.faults.skipSummarySave !== true) this.withCounter(gateFd, dir, (gfd) => this.saveSummary(gfd, dir, pass.s as Summary))
    } catch {
      // The grants stand: their records are in place and their locks held. A summary that could
      // not be written (a full disk, a vanished directory) is one whose recorded counter no longer
      // matches, so the next claim lists the directory and judges it; nothing relies on it first.
    }
    return out
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

  private claimLocked(dir: string, gateFd: number | null, req: ClaimRequest, batch?: PassState): ClaimAttempt {
    const pass = batch ?? { s: null, unsaved: false, keyFile: false }
    try {
      if (!pass.keyFile) this.ensureKeyFile(dir, req.key)
      pass.keyFile = true
      return this.withCounter(gateFd, dir, (gfd) => {
        const out = this.decide(dir, gateFd, gfd, req, pass)
        if (batch === undefined && pass.unsaved && pass.s !== null && this.faults.skipSummarySave !== true) this.saveSummary(gfd, dir, pass.s)
        return out
      })
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.vanished('lock_root_vanished')
      throw err
    }
  }

  /** The place a previous busy answer gave, if it still stands in this very directory. */
  private placeIn(dir: string, given: unknown): FilePlace | null {
    if (!(given instanceof FilePlace) || given.closed) return null
    if (given.dir === dir && given.dirId === dirId(dir) && given.isIntact()) return given
    // The directory was replaced (a wiped root) or the file removed: that place is no more.
    given.close()
    return null
  }

  /**
   * The claim, under the gate. Order first (S11): while an earlier place is live, only queue.
   * Then room, from the summary; only when it says "no room" is every holder judged (reclaiming
   * the proven gone), and only then by a waiter whose picture of the holders is stale.
   */
  private decide(dir: string, gateFd: number | null, gfd: number, req: ClaimRequest, pass: PassState): ClaimAttempt {
    let place = this.placeIn(dir, req.place)
    if (place !== null) place.fired = false
    // Within one pass the summary read (and checked) by the claim before is current.
    let summary = pass.s
    let scan: Scan | null = null
    if (summary === null) {
      summary = readSummary(gfd)
      // The summary knows what this library wrote; a slot file it does not know (a process of an
      // older version, a file put there by hand) means it cannot be trusted: judge everything.
      if (summary !== null && !this.unchangedSince(dir, gfd, summary)) {
        // Listed and found as the summary says: record the directory as seen, to spare the next claim.
        if (this.summaryCovers(dir, summary)) pass.unsaved = true
        else summary = null
      }
      if (summary === null) ({ s: summary, scan } = this.rebuild(dir, gateFd, gfd, readSummary(gfd), false, place))
    }
    const s: Summary = summary
    pass.s = s
    let dirty = false
    const limit = req.limit + (this.faults.overAdmit ?? 0)
    const below = this.faults.countByIndex ? req.limit : Infinity
    const used = (): number => (this.faults.sumByCount ? slotCount(s, below) : usedWeight(s, below))
    const fair = req.fair && this.faults.barge !== true

    const busy = (pids: number[] | null, recheckInMs: number | null): ClaimAttempt => {
      if (place === null && req.mode === 'wait' && fair) {
        place = this.enqueue(dir, gateFd, gfd, s, req)
        pass.unsaved = true
        if (scan !== null) {
          place.lastScan = performance.now()
          place.scanGen = s.gen
          place.pids = pids
        }
      } else if (dirty) pass.unsaved = true
      const opaque: FileWake = { pids, dirId: place?.dirId ?? dirId(dir) }
      const out: ClaimAttempt = { kind: 'busy', active: slotCount(s), used: usedWeight(s), limit: req.limit, wake: { recheckInMs, opaque } }
      if (place !== null) out.place = place
      return out
    }

    if (fair) {
      const ahead = this.livePlaceBefore(dir, gateFd, s, place?.ticket ?? Infinity)
      dirty ||= ahead.changed
      if (ahead.live !== null) return busy(this.watchablePid(ahead.live), null)
    }

    if (used() + req.weight > limit && scan === null) {
      const due = this.scanDue(place, s)
      if (due === 0) {
        ;({ s: summary, scan } = this.rebuild(dir, gateFd, gfd, s, false, place))
        Object.assign(s, summary)
        dirty = false
      } else {
        // Our list of holders is current (their exits are watched), or a judgement is not due yet.
        const current = place !== null && place.scanGen === s.gen
        return busy(current ? (place as FilePlace).pids : null, current && due === Infinity ? null : due)
      }
    }
    if (used() + req.weight > limit) return busy(scan ? holderPids(scan.judged, this.host()) : null, null)
    // The slot we would take exists, uncounted (put there by hand): nothing the summary says can
    // be trusted now. Judge everything and decide again.
    if (scan === null && fs.existsSync(join(dir, `slot-${lowestFree(s)}`))) {
      ;({ s: summary, scan } = this.rebuild(dir, gateFd, gfd, s, false, place))
      Object.assign(s, summary)
      if (used() + req.weight > limit) return busy(holderPids(scan.judged, this.host()), null)
    }
    this.faults.afterScan?.()
    return this.grant(dir, gateFd, gfd, s, req, place, scan, pass)
  }

  /** Writes the summary with what it needs to recognise an unchanged directory next time. */
  private saveSummary(gfd: number, dir: string, s: Summary): void {
    s.dirMtime = dirMtime(dir)
    s.counter = readCounter(gfd)
    writeSummary(gfd, s)
  }

  /**
   * True when nothing was added to or removed from the directory since the summary was written:
   * the directory's mtime and the fence counter are as its writer left them. (A change after an
   * mtime was read gets a newer one on kernels with fine-grained timestamps, Linux 6.13 and later;
   * on older ones a file put there by hand within the same clock tick, a few ms, goes unseen until
   * the key's next full judgement. Older proclease versions change the counter when they grant.)
   */
  private unchangedSince(dir: string, gfd: number, s: Summary): boolean {
    return s.dirMtime !== '' && s.dirMtime === dirMtime(dir) && s.counter === readCounter(gfd)
  }

  /**
   * Whether every slot file in the directory is one the summary counts. One listing of names, no
   * file opened: what keeps a claim's cost flat in the number of holders. Leftover temporary files
   * of killed writers are removed on the way.
   */
  private summaryCovers(dir: string, s: Summary): boolean {
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.vanished('key_directory_vanished')
      throw err
    }
    const slots: number[] = []
    const temps: string[] = []
    for (const name of names) {
      if (name.startsWith('slot-')) {
        const m = SLOT_RE.exec(name)
        // Anything else named like a slot (slot-01, slot-x) is stray: never counted.
        if (m === null) continue
        slots.push(Number(m[1]))
      } else if (TMP_RE.test(name)) temps.push(name)
    }
    if (temps.length > 0) this.cleanTemps(dir, temps)
    slots.sort((x, y) => x - y)
    let r = 0
    for (const i of slots) {
      while (r < s.slots.length && i >= (s.slots[r] as Run)[0] + (s.slots[r] as Run)[1]) r++
      const run = s.slots[r]
      if (run === undefined || i < run[0]) return false
    }
    return true
  }

  /** 0 when the waiter must judge every holder now; else how long until it should. */
  private scanDue(place: FilePlace | null, s: Summary): number {
    if (place === null || place.exitFired) return 0
    const now = performance.now()
    if (place.scanGen === s.gen) return place.exitsCovered ? Infinity : Math.max(0, place.lastScan + SCAN_EVERY_MS - now)
    // Holders changed since we looked: judge again, but not more often than SCAN_EVERY_MS per key
    // (every hand-off makes a new head; a thousand holders take milliseconds to judge).
    const since = Date.now() - s.scannedAt
    return since < 0 || since >= SCAN_EVERY_MS ? 0 : SCAN_EVERY_MS - since
  }

  /** The pid of a live place's waiter, when its exit can be watched from here. */
  private watchablePid(j: Judged): number[] | null {
    return holderPids([j], this.host())
  }

  /**
   * The nearest live place before `ticket`, judging from the nearest down; places proven gone
   * are removed on the way (their waiter died). Unreadable place files are not places: they can
   * never be served, so they must not block the queue (they show as stray in status).
   */
  private livePlaceBefore(dir: string, gateFd: number | null, s: Summary, ticket: number): { live: Judged | null; changed: boolean } {
    let changed = false
    const ctx = this.judgeContext(dir, false, { gateFd, notices: [] })
    const before = s.queue.filter(([t]) => t < ticket).sort((x, y) => y[0] - x[0])
    for (const [t] of before) {
      const j = judgeWait(dir, t, ctx)
      if (j === null || j.reclaimed === true || j.record === null) {
        dequeue(s, t)
        changed = true
        continue
      }
      if (j.verdict.occupied) return { live: j, changed }
    }
    return { live: null, changed }
  }

  /** Takes a place at the back of the queue; its file is watched before the gate is let go. */
  private enqueue(dir: string, gateFd: number | null, gfd: number, s: Summary, req: ClaimRequest): FilePlace {
    const ticket = enqueue(s, req.weight)
    this.saveSummary(gfd, dir, s)
    const record: SlotRecord = {
      v: RECORD_VERSION,
      key: req.key,
      slot: ticket,
      token: randomBytes(16).toString('hex'),
      fence: 0,
      limit: req.limit,
      kernelLock: this.root?.kernelLocks ?? false,
      lockUntilRemoved: true,
      weight: req.weight,
      acquiredAt: new Date().toISOString(),
      ...holderFields(req.holder),
      metadata: {},
    }
    const file = this.placeFile(dir, gateFd, waitName(ticket), record)
    return new FilePlace(req.key, dir, dirId(dir), ticket, req.weight, file.fd, file.dev, file.ino, this.watchFile)
  }

  private grant(dir: string, gateFd: number | null, gfd: number, s: Summary, req: ClaimRequest, place: FilePlace | null, scan: Scan | null, pass: PassState): ClaimAttempt {
    const slot = lowestFree(s)
    let maxFence = 0
    for (const j of scan?.judged ?? []) if (j.record) maxFence = Math.max(maxFence, j.record.fence)
    const fence = this.nextFence(gateFd, dir, maxFence)
    let recovered: RecoveredHolder | null = null
    while (s.notices.length > 0 && recovered === null) {
      const f = s.notices[0] as number
      recovered = readNotice(dir, f)
      if (recovered === null) {
        dropNotice(dir, f)
        s.notices.shift()
      }
    }
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
    // The summary is written once, after the record is in place. A writer killed before that
    // leaves a summary that does not count this slot — but the fence counter, bumped above, no
    // longer matches the one the summary recorded, so the next claim lists the directory and
    // judges it (unchangedSince): the slot is counted before anyone relies on the summary.
    addSlot(s, slot, req.weight)
    const hold = this.publish(dir, gateFd, record, recovered)
    if (recovered !== null && this.faults.noticeTwice !== true) {
      dropNotice(dir, recovered.fence)
      s.notices.shift()
    }
    if (place !== null) {
      fs.unlinkSync(place.path)
      dequeue(s, place.ticket)
      place.close()
      // The next in line is now first: it takes over watching the holders.
      touchHead(dir, s, null)
    }
    // Saved once at the end of the pass (the directory changed: its new mtime goes with it).
    pass.unsaved = true
    return { kind: 'granted', hold }
  }

  private nextFence(gateFd: number | null, dir: string, seen: number): number {
    return this.withCounter(gateFd, dir, (fd) => takeFence(fd, seen, this.clock(), () => fenceFloor(this.rootPath, this.native)))
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
   * Writes a record under a temporary name, locks it through a read-only descriptor and renames it
   * to `name`: a record is never visible half-written, and the descriptor that carries its lock
   * (the one `run` hands to its command) cannot write it. On any failure nothing is left behind.
   */
  private placeFile(dir: string, gateFd: number | null, name: string, record: SlotRecord): { fd: number; dev: number; ino: number } {
    const tmp = join(dir, `tmp-${record.token}`)
    let wfd: number | null = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    let rfd: number | null = null
    try {
      // A little slack, so that the in-place rewrites of a hand-over never need new blocks for a
      // few more bytes (a full disk then cannot tear them).
      const body = serializeRecord(record)
      writeAll(wfd, serializeRecord(record, body.length + RECORD_SLACK))
      rfd = fs.openSync(tmp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
      if (!tryLock(this.native, rfd, tmp)) throw new Error(`fresh record file ${tmp} is locked by another process`)
      fs.closeSync(wfd)
      wfd = null
      this.faults.beforePublish?.()
      // The count is only as good as the gate: if the lock root was deleted and re-created while
      // we worked (a tmp cleaner), `dir` now names a directory we never counted, where someone
      // may already hold this slot. Publish only under the live gate.
      if (!gateIsLive(dir, gateFd)) throw this.vanished('lock_root_vanished')
      fs.renameSync(tmp, join(dir, name))
      const st = fs.fstatSync(rfd)
      const out = { fd: rfd, dev: st.dev, ino: st.ino }
      rfd = null
      return out
    } catch (err) {
      if (wfd !== null) fs.closeSync(wfd)
      if (rfd !== null) fs.closeSync(rfd)
      removeAfterFailure(tmp)
      throw err
    }
  }

  private publish(dir: string, gateFd: number | null, record: SlotRecord, recovered: RecoveredHolder | null): Hold {
    const file = this.placeFile(dir, gateFd, `slot-${record.slot}`, record)
    const lost = new AbortController()
    const handle: FileHandle = { dir, fd: file.fd, dev: file.dev, ino: file.ino, record, released: false, lost, releasing: null }
    this.holds.add(handle)
    this.watchHolds()
    const held = (): boolean => !handle.released && this.ownership(handle, record.slot) === 'own'
    return { key: record.key, slot: record.slot, token: record.token, fence: record.fence, weight: weightOf(record), recovered, signal: lost.signal, held, handle }
  }

  /**
   * Announces holds lost without our release (S7): while this store has holds, it looks once a
   * second whether each slot's path still names the hold's own inode (a wiped root, a record
   * removed or replaced by hand). A timer, not a watch per hold: it costs nothing per grant, and
   * `held()` answers on demand in between.
   */
  private watchHolds(): void {
    if (this.lossTimer !== null || this.faults.quietLoss === true) return
    this.lossTimer = setInterval(() => this.checkHolds(), LOSS_CHECK_MS)
    this.lossTimer.unref()
  }

  private checkHolds(): void {
    for (const h of this.holds) {
      if (h.released || h.releasing !== null || h.lost.signal.aborted) continue
      let mine: boolean
      try {
        mine = this.ownership(h, h.record.slot) === 'own'
      } catch {
        // Cannot look (the directory went away with the root): not proof of loss by itself.
        mine = !this.rootGone(h.dir)
      }
      if (!mine) h.lost.abort('lost' satisfies LostReason)
    }
    if (this.holds.size === 0 && this.lossTimer !== null) {
      clearInterval(this.lossTimer)
      this.lossTimer = null
    }
  }

  private rootGone(dir: string): boolean {
    try {
      fs.lstatSync(dir)
      return false
    } catch (err) {
      return isErrno(err, 'ENOENT', 'ENOTDIR')
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

  private releaseLocked(h: FileHandle, hold: Hold, gateFd: number | null): boolean {
    if (this.ownership(h, hold.slot) !== 'own') return false
    return this.removeCounted(h.dir, gateFd, `slot-${hold.slot}`, (s) => {
      removeSlot(s, hold.slot)
      touchHead(h.dir, s, null)
    })
  }

  /**
   * Removes an entry the summary counts (a slot, a place), then updates the summary with `change`
   * — but only a summary that was current before the removal. One that was not (a claimer killed
   * after publishing, before writing it) is left as it is: its recorded mtime and counter no
   * longer match, so the next claim lists the directory and judges it, whereas rewriting it now
   * would make its under-count look current. False when the entry was already gone.
   */
  private removeCounted(dir: string, gateFd: number | null, name: string, change: (s: Summary) => void): boolean {
    return this.withCounter(gateFd, dir, (gfd) => {
      const read = readSummary(gfd)
      const s = read !== null && this.unchangedSince(dir, gfd, read) ? read : null
      try {
        fs.unlinkSync(join(dir, name))
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return false
        throw err
      }
      if (s !== null) {
        change(s)
        this.saveSummary(gfd, dir, s)
      } else if (read !== null) {
        // Still tell the waiters (a hint only): the queue it lists is good enough for that.
        change(read)
      }
      return true
    })
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
    const p = this.waitGate(hold.key, keyDirName(hold.key), wait, false, (_dir, gateFd) => (h.released ? false : this.releaseLocked(h, hold, gateFd))).then(
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
      out = gateSync(hold.key, GATE_WAIT_MS, this.pass(keyDirName(hold.key), 'existing', false, (_dir, gateFd) => this.releaseLocked(h, hold, gateFd)))
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
    const out = await this.waitGate(hold.key, keyDirName(hold.key), wait, false, (dir, gateFd): HandBack => {
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
        this.removeCounted(dir, gateFd, `slot-${hold.slot}`, (s) => {
          removeSlot(s, hold.slot)
          touchHead(dir, s, null)
        })
        return { outcome: 'released' }
      } finally {
        fs.closeSync(fd)
      }
    })
    if (!h.released) this.finishRelease(h, true)
    return out ?? { outcome: 'lost', cause: 'record_removed' }
  }

  // ---- inspection ---------------------------------------------------------------------

  private status(key: string, scan: Pick<Scan, 'judged' | 'waits' | 'stray'>, verbose: boolean): KeyStatus {
    const { judged } = scan
    // Unreadable queue files are no places (they never block the queue): shown with the stray.
    const stray = [...scan.stray, ...scan.waits.filter((w) => w.record === null).map((w) => w.name)]
    const waiting = scan.waits.filter((w) => w.record !== null && w.verdict.occupied).length
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
    const out: KeyStatus = { key, active, used, waiting, holders }
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
    const out = await this.waitGate(label, dirName, wait, false, (dir) => this.status(label, this.scan(dir, verbose), verbose))
    return out ?? { key: label, active: 0, used: 0, waiting: 0, holders: [] }
  }

  async sweep(key: string, dryRun: boolean, verbose: boolean, wait?: GateWait): Promise<SweepReport> {
    this.checkOpen()
    const out = await this.waitGate(key, keyDirName(key), wait, !dryRun, (dir, gateFd) => {
      const scan = dryRun ? this.scan(dir, verbose) : this.withCounter(gateFd, dir, (gfd) => this.rebuild(dir, gateFd, gfd, readSummary(gfd), verbose).scan)
      const reclaimed: SweepReport['reclaimed'] = []
      const remaining: Judged[] = []
      for (const j of scan.judged) {
        if (dryRun ? j.verdict.reclaim : j.reclaimed) {
          const item: { slot: number; pid?: number } = { slot: j.slot }
          if (verbose && j.record) item.pid = j.record.pid
          reclaimed.push(item)
          if (dryRun) remaining.push(j)
        } else {
          remaining.push(j)
        }
      }
      const waits = scan.waits.filter((w) => !w.reclaimed)
      return { key, dryRun, reclaimed, status: this.status(key, { judged: remaining, waits, stray: scan.stray }, verbose) }
    })
    return out ?? { key, dryRun, reclaimed: [], status: { key, active: 0, used: 0, waiting: 0, holders: [] } }
  }

  /**
   * Watches the key's directory (releases, reclaims) and the exits of the holders the busy answer
   * named (crashes). Null when no directory watch can be had (no directory yet, or the kernel
   * refuses one, e.g. at the inotify limits): the engine then keeps polling briskly.
   */
  async watch(key: string, wake: WakeHint, onChange: () => void, place?: unknown): Promise<KeyWatch | null> {
    this.checkOpen()
    if (place instanceof FilePlace) return this.watchPlace(place, wake, onChange)
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

  /**
   * A queued waiter watches its own place file (touched when its turn may have come) and the
   * exits the busy answer named: the waiter before it, or — first in line — the holders.
   */
  private watchPlace(place: FilePlace, wake: WakeHint, onChange: () => void): KeyWatch | null {
    if (place.closed || !place.watching) return null
    const exits = new ExitWatches(() => {
      place.exitFired = true
      onChange()
    }, this.native)
    const w: KeyWatch & { alive: boolean } = {
      alive: true,
      get covered(): boolean {
        return w.alive && place.watching && place.exitsCovered
      },
      targeted: true,
      update(next: WakeHint): void {
        const o = next.opaque as FileWake | undefined
        if (o === undefined || o.dirId !== place.dirId || place.closed) {
          w.close()
          return
        }
        place.exitsCovered = o.pids !== null && exits.update(o.pids)
        if (o.pids === null) exits.update([])
      },
      close(): void {
        w.alive = false
        place.onWake = null
        place.exitsCovered = false
        exits.close()
      },
    }
    place.onWake = onChange
    w.update(wake)
    // A touch that came before this watch was connected.
    if (place.fired) queueMicrotask(onChange)
    return w
  }

  /** Gives up a queue place: its file goes, and the waiter behind it is told at once. */
  async leave(key: string, place: unknown): Promise<void> {
    if (!(place instanceof FilePlace) || place.closed || this.faults.leaveIgnored === true) return
    try {
      await this.waitGate(key, keyDirName(key), undefined, false, (dir, gateFd) => {
        if (dir !== place.dir || !place.isIntact()) return
        this.removeCounted(dir, gateFd, waitName(place.ticket), (s) => {
          dequeue(s, place.ticket)
          touchNext(dir, s, place.ticket)
        })
      })
    } catch {
      // Leaving runs as an acquire ends with its own error. Closing the descriptor below is what
      // matters: the place's lock goes with it, so it is judged gone (and its file removed) by
      // the next claim; only the prompt wake of the waiter behind is lost, which its poll covers.
    } finally {
      place.close()
    }
  }

  // ---- pruning ------------------------------------------------------------------------

  /**
   * Removes key directories with no holder and no waiter whose last change (a grant, release,
   * wait or reclaim) is at least `idleMs` old. A key whose gate is held right now is in use and
   * kept. Holds proven gone are reclaimed first (leaving their takeover notice), which counts as
   * a change: such a key goes one idle period later, unless a grant takes the notice before.
   */
  async prune(idleMs: number, dryRun: boolean): Promise<PruneReport> {
    this.checkOpen()
    const removed: string[] = []
    let kept = 0
    const root = this.rootInfo('existing')
    if (root === null) return { dryRun, removed, kept }
    // Leftovers of a pruner killed half-way: already out of the root's key space.
    if (!dryRun) for (const name of fs.readdirSync(root.path)) if (PRUNING_RE.test(name)) removeEmptied(join(root.path, name))
    for (const entry of this.listKeyEntries()) {
      const out = gateOnce(this.pass(entry.dir, 'existing', false, (dir, gateFd) => this.pruneLocked(root.path, dir, gateFd, idleMs, dryRun)))
      // A gate held right now (BUSY) means the key is in use: kept.
      if (out === true) removed.push(entry.key ?? entry.dir)
      else kept++
    }
    return { dryRun, removed, kept }
  }

  private pruneLocked(rootPath: string, dir: string, gateFd: number | null, idleMs: number, dryRun: boolean): boolean {
    const dirSt = fs.lstatSync(dir)
    // Whole milliseconds, as Date.now() counts them: a change in this very millisecond is 0 ms old.
    const lastChange = Math.floor(Math.max(dirSt.mtimeMs, gateFd === null ? 0 : fs.fstatSync(gateFd).mtimeMs))
    if (Date.now() - lastChange < idleMs) return false
    const scan = this.scan(dir)
    const waiting = scan.waits.some((w) => w.record !== null && w.verdict.occupied)
    if (scan.judged.length > 0 || waiting) {
      // Holders (or places) left: reclaim the proven gone, and keep the key for now.
      if (!dryRun && gateFd !== null && (scan.judged.some((j) => j.verdict.reclaim) || scan.waits.some((w) => w.verdict.reclaim))) {
        this.withCounter(gateFd, dir, (gfd) => this.rebuild(dir, gateFd, gfd, readSummary(gfd)))
      }
      return false
    }
    if (dryRun) return true
    this.faults.beforePruneRemove?.()
    if (gateFd !== null) raiseFenceFloor(rootPath, this.native, readCounter(gateFd))
    return removeKeyDir(rootPath, dir)
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
    if (this.lossTimer !== null) clearInterval(this.lossTimer)
    this.lossTimer = null
  }

  private checkOpen(): void {
    if (this.closed) throw new LeaseError('store_closed', 'the lease store was closed')
  }
}

function handleOf(hold: Hold): FileHandle {
  return hold.handle as FileHandle
}

function dirMtime(dir: string): string {
  return fs.lstatSync(dir, { bigint: true }).mtimeNs.toString()
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

