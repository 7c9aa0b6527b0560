// The key's queue: one `wait-<ticket>` file per waiting acquire, written like a slot record and
// kernel-locked by its waiter for as long as it waits, so a dead waiter's place is judged with the
// same two witnesses as a dead holder's slot. Order is by ticket (summary.ts hands them out).
//
// Waking is targeted: each waiter watches only its own file, and whoever changes the key touches
// (utimes) the one file whose waiter is concerned — a release touches the head's, a waiter that
// is served or leaves touches the next one's. The other waiters make no system call for it. A
// waiter that dies wakes the one behind it through that waiter's exit watch on it.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { isErrno, sameFile } from './fsx.js'
import { waitName } from './judge.js'
import { type Summary, dequeue } from './summary.js'

/** A waiting acquire's place, private to the file store (the engine only passes it back). */
export class FilePlace {
  /** A touch (or any change) of our file arrived since the last claim attempt looked. */
  fired = false
  /** An exit watched for this place fired since the last full judgement. */
  exitFired = false
  /** When this place last judged every holder (performance.now()). */
  lastScan = -Infinity
  /** The summary generation of that judgement: while equal, `pids` are exactly the holders. */
  scanGen = -1
  /** The holders' pids from that judgement (null: not all watchable from here). */
  pids: number[] | null = null
  /** Every one of those exits is watched (set by the store's watch). */
  exitsCovered = false
  onWake: (() => void) | null = null
  closed = false
  private watcher: fs.FSWatcher | null = null

  constructor(
    readonly key: string,
    readonly dir: string,
    readonly dirId: string,
    readonly ticket: number,
    readonly weight: number,
    /** Read-only descriptor carrying the place's kernel lock. */
    readonly fd: number,
    readonly dev: number,
    readonly ino: number,
    watchFile: (path: string, onEvent: () => void) => fs.FSWatcher,
  ) {
    // Armed while the gate that created the file is still held: no touch can come before it.
    try {
      const w = watchFile(this.path, () => this.wake())
      w.on('error', () => {
        this.watcher?.close()
        this.watcher = null
        this.wake()
      })
      this.watcher = w
    } catch {
      // No watch to be had (inotify limits): the engine's backoff polls instead (`watching` is false).
      this.watcher = null
    }
  }

  get path(): string {
    return join(this.dir, waitName(this.ticket))
  }

  /** Whether touches of our file reach us. */
  get watching(): boolean {
    return this.watcher !== null && !this.closed
  }

  private wake(): void {
    this.fired = true
    this.onWake?.()
  }

  /** Whether the queue file at our path is still the one we hold locked. */
  isIntact(): boolean {
    if (this.closed) return false
    try {
      return sameFile(fs.lstatSync(this.path), this)
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return false
      throw err
    }
  }

  /** Ends the place: the kernel lock goes with the descriptor, so it is judged gone from now on. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.watcher?.close()
    this.watcher = null
    this.onWake = null
    fs.closeSync(this.fd)
  }
}

/**
 * Touches the file of the first queued place other than `self` — the waiter whose turn it may now
 * be. Places whose file is gone are dropped from the summary on the way. Returns true when the
 * summary changed.
 */
export function touchHead(dir: string, s: Summary, self: number | null): boolean {
  let changed = false
  for (const [ticket] of [...s.queue].sort((a, b) => a[0] - b[0])) {
    if (ticket === self) return changed
    if (touch(dir, ticket)) return changed
    dequeue(s, ticket)
    changed = true
  }
  return changed
}

/** Touches the file of the first queued place after `ticket` (the one that watches it). */
export function touchNext(dir: string, s: Summary, ticket: number): boolean {
  let changed = false
  for (const [t] of [...s.queue].sort((a, b) => a[0] - b[0])) {
    if (t <= ticket) continue
    if (touch(dir, t)) return changed
    dequeue(s, t)
    changed = true
  }
  return changed
}

/** One system call: the waiter's watch sees the attribute change. False when the file is gone. */
function touch(dir: string, ticket: number): boolean {
  const now = new Date()
  try {
    fs.lutimesSync(join(dir, waitName(ticket)), now, now)
    return true
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false
    throw err
  }
}
