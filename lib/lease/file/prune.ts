// Pruning idle keys, and the fence floor that keeps their fences rising afterwards.
//
// A key's fence counter lives in its gate file, so removing the key directory removes the counter.
// Before a key is removed, its counter is folded into the root's `fence-floor` file (under a kernel
// lock, as a maximum), and a key that starts afresh seeds its counter above that floor as well as
// above the clock: fences never go back, even with a clock set back in between.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import type { NativeBinding } from '../../binding.js'
import { LeaseError } from '../../errors.js'
import { FENCE_MAX, FENCE_WIDTH, readCounter } from './fence.js'
import { isErrno, sleepSync, writeAll } from './fsx.js'
import { tryLock } from './lock.js'

export const FENCE_FLOOR = 'fence-floor'
/** Directories being removed by a prune: no longer key directories, never listed or used. */
export const PRUNING_RE = /^\.prune-[0-9a-f]{16}$/
const FLOOR_WAIT_MS = 10_000

const { O_RDWR, O_RDONLY, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fs.constants

/** Runs fn on the floor file, locked; `create` false reads a missing floor as 0 without creating it. */
function withFloor<T>(root: string, native: NativeBinding | null, create: boolean, fn: (fd: number) => T): T | null {
  const path = join(root, FENCE_FLOOR)
  let fd: number
  try {
    fd = fs.openSync(path, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK, 0o600)
  } catch (err) {
    if (!create && isErrno(err, 'ENOENT')) return null
    if (isErrno(err, 'ELOOP', 'EISDIR', 'ENXIO')) throw new LeaseError('lock_root_unsafe', `${path} is not a regular file`)
    throw err
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw new LeaseError('lock_root_unsafe', `${path} is not a regular file`)
    // Held for a few microseconds by whoever has it; bounded all the same.
    const deadline = performance.now() + FLOOR_WAIT_MS
    for (let pause = 1; !tryLock(native, fd, path); pause = Math.min(pause * 2, 20)) {
      if (performance.now() > deadline) throw new LeaseError('key_frozen', `${path} has been locked for over ${FLOOR_WAIT_MS} ms`)
      sleepSync(pause)
    }
    return fn(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** The largest fence counter of any key pruned under this root (0 when none was). */
export function fenceFloor(root: string, native: NativeBinding | null): number {
  return withFloor(root, native, false, (fd) => readCounter(fd)) ?? 0
}

/** Raises the floor to at least `fence` before a key with that counter is removed. */
export function raiseFenceFloor(root: string, native: NativeBinding | null, fence: number): void {
  withFloor(root, native, true, (fd) => {
    if (fence > FENCE_MAX || readCounter(fd) >= fence) return
    writeAll(fd, Buffer.from(String(fence).padStart(FENCE_WIDTH, '0')))
  })
}

/**
 * Takes a key directory out of the root in one step (a rename, while its gate is held), then
 * empties and removes it. A claim racing with us either finished before (and the key was not
 * idle) or finds no directory, or a new one, and starts afresh.
 */
export function removeKeyDir(root: string, dir: string): boolean {
  const away = join(root, `.prune-${randomBytes(8).toString('hex')}`)
  try {
    fs.renameSync(dir, away)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false
    throw err
  }
  removeEmptied(away)
  return true
}

/** Empties and removes a directory taken out by a prune; only plain files are expected in it. */
export function removeEmptied(dir: string): void {
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return
    throw err
  }
  for (const name of names) {
    try {
      fs.unlinkSync(join(dir, name))
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
    }
  }
  try {
    fs.rmdirSync(dir)
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err
  }
}
