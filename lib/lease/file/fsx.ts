// Small filesystem helpers shared by the file store's parts: errno checks, errors built from a
// native errno, whole writes, and a synchronous pause.
import * as fs from 'node:fs'
import { constants as osConstants } from 'node:os'
import { getSystemErrorName } from 'node:util'

export const ERRNO = osConstants.errno

export function isErrno(err: unknown, ...codes: string[]): err is NodeJS.ErrnoException {
  return err instanceof Error && codes.includes((err as NodeJS.ErrnoException).code ?? '')
}

/** An Error shaped like Node's own fs errors, from an errno the addon returned. */
export function errnoError(errno: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno)
  const err: NodeJS.ErrnoException = new Error(`${syscall} failed: ${code}${path ? ` (${path})` : ''}`)
  err.code = code
  err.errno = -errno
  err.syscall = syscall
  if (path) err.path = path
  return err
}

/** Writes all of bytes at offset 0; a short write (a full disk) must never publish a cut record. */
export function writeAll(fd: number, bytes: Buffer): void {
  writeAllAt(fd, bytes, 0)
}

export function writeAllAt(fd: number, bytes: Buffer, position: number): void {
  let done = 0
  while (done < bytes.length) {
    const n = fs.writeSync(fd, bytes, done, bytes.length - done, position + done)
    if (n <= 0) throw errnoError(ERRNO.ENOSPC, 'write')
    done += n
  }
}

/** Removes a file of ours by path; already gone is fine. */
export function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path)
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err
  }
}

/**
 * Removes a temporary file after a failed write. A failure to remove it is not reported over the
 * original error: the next gate holder removes leftover temporary files anyway.
 */
export function removeAfterFailure(path: string): void {
  try {
    fs.unlinkSync(path)
  } catch {
    // See above: the original error is the one the caller must see.
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Same file: device and inode. */
export function sameFile(a: { dev: number; ino: number }, b: { dev: number; ino: number }): boolean {
  return a.dev === b.dev && a.ino === b.ino
}
