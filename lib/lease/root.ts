import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { LeaseError } from '../errors.js'
import { isErrno } from './file/fsx.js'
import { filesystemTrust, untrustedFilesystem as untrustedByInfo } from './fstype.js'

/**
 * The per-user private default: $XDG_RUNTIME_DIR/proclease when that directory is ours and
 * private, else <tmpdir>/proclease-<uid>.
 */
export function defaultLockRoot(env: NodeJS.ProcessEnv = process.env): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  const xdg = env.XDG_RUNTIME_DIR
  if (xdg && xdg.startsWith('/')) {
    try {
      const st = fs.lstatSync(xdg)
      if (st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0) return join(xdg, 'proclease')
    } catch {
      // Not usable: fall through to the temporary directory.
    }
  }
  return join(tmpdir(), `proclease-${uid}`)
}

/** Name of an untrusted Linux filesystem type (statfs f_type), or null; see fstype.ts for macOS. */
export function untrustedFilesystem(type: number): string | null {
  return untrustedByInfo({ platform: 'linux', type })
}

function unsafe(root: string, why: string): LeaseError {
  return new LeaseError('lock_root_unsafe', `lock root ${root} is unsafe: ${why}`)
}

function unwritable(root: string, err: NodeJS.ErrnoException): LeaseError {
  return new LeaseError('lock_root_unwritable', `lock root ${root} is not writable (${err.code})`, { cause: err })
}

const ROOT_ADVICE =
  'use a private directory of your own: set lockRoot (CLI: --root), or XDG_RUNTIME_DIR for the default'

/** Checks a directory we are about to trust: ours, a real directory, not writable by others. */
export function checkPrivateDir(path: string, st: fs.Stats, label: string): void {
  // The root's own problems come with what to do about them; a key directory's are ours to fix.
  const advice = label === 'it' ? `; ${ROOT_ADVICE}` : ''
  if (st.isSymbolicLink()) throw unsafe(path, `${label} is a symbolic link${advice}`)
  if (!st.isDirectory()) throw unsafe(path, `${label} is not a directory${advice}`)
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid
  if (st.uid !== uid) {
    const who = label === 'it' ? ' (another user created it, perhaps to interfere with your locks)' : ''
    throw unsafe(path, `${label} is owned by uid ${st.uid}, not ${uid}${who}${advice}`)
  }
  if ((st.mode & 0o022) !== 0) throw unsafe(path, `${label} is group- or world-writable${advice}`)
}

export interface RootInfo {
  path: string
  /** Kernel locks on this filesystem are trusted. */
  kernelLocks: boolean
  /** Identity of the vetted directory: a root replaced under us is vetted again. */
  dev: number
  ino: number
}

/**
 * `mkdir -p` with mode 0700, bounded. Not fs.mkdirSync({ recursive: true }): on Node 20 it loops
 * forever, at full CPU, when mkdir answers ENOENT under an existing parent (procfs, e.g. a lock
 * root under /proc). ENOENT after a few passes (a parent that refuses entries, or keeps vanishing)
 * is thrown to the caller.
 */
function makeDirs(path: string): void {
  for (let pass = 0; ; pass++) {
    const missing: string[] = []
    for (let p = path; ; ) {
      try {
        fs.lstatSync(p)
        break
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err
        missing.push(p)
        const parent = dirname(p)
        if (parent === p) break
        p = parent
      }
    }
    try {
      for (const dir of missing.reverse()) {
        try {
          fs.mkdirSync(dir, { mode: 0o700 })
        } catch (err) {
          if (!isErrno(err, 'EEXIST')) throw err
        }
      }
      return
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || pass >= 2) throw err
    }
  }
}

/** Vets an existing lock root: private, ours, and on a filesystem whose kernel locks we trust. */
export function vetLockRoot(path: string, st: fs.Stats, allowUnsafeFilesystem: boolean): RootInfo {
  checkPrivateDir(path, st, 'it')
  let fsName: string | null
  try {
    // Linux: the statfs magic number; macOS: the type name and MNT_LOCAL through the addon.
    fsName = filesystemTrust(path).untrusted
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw err
    throw new LeaseError('locks_unsupported', `cannot tell the filesystem type of ${path}`, { cause: err })
  }
  if (fsName !== null && !allowUnsafeFilesystem) {
    throw new LeaseError(
      'locks_unsupported',
      `lock root ${path} is on ${fsName}, where kernel locks cannot be trusted; use a local directory or opt into identity-only mode with allowUnsafeFilesystem`,
    )
  }
  return { path, kernelLocks: fsName === null, dev: st.dev, ino: st.ino }
}

/** The lock root's current directory entry, or null when there is none. */
export function lstatRoot(path: string): fs.Stats | null {
  try {
    return fs.lstatSync(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null
    if (isErrno(err, 'ENOTDIR')) throw unsafe(path, 'a parent is not a directory')
    throw err
  }
}

/**
 * Resolves, creates (0700) and vets a lock root. Safe to call again after the root vanished:
 * it is re-created and re-vetted.
 */
export function ensureLockRoot(root: string, allowUnsafeFilesystem: boolean): RootInfo {
  const path = resolve(root)
  let st = lstatRoot(path)
  if (st === null) {
    try {
      makeDirs(path)
    } catch (mkErr) {
      if (isErrno(mkErr, 'EACCES', 'EPERM', 'EROFS', 'ENOENT')) throw unwritable(path, mkErr)
      if (isErrno(mkErr, 'ENOTDIR')) throw unsafe(path, 'a parent is not a directory')
      throw mkErr
    }
    st = fs.lstatSync(path)
  }
  return vetLockRoot(path, st, allowUnsafeFilesystem)
}

const SLUG_MAX = 40

/**
 * Injective name of a key's directory: a readable slug plus a hash of the exact key, so keys
 * differing only in case or punctuation never share a directory, even on case-insensitive disks.
 */
export function keyDirName(key: string): string {
  const slug = key
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '_')
    .replace(/^[._-]+/, '')
    .slice(0, SLUG_MAX)
  const hash = createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 32)
  return `k-${slug}-${hash}`
}

export const KEY_DIR_PATTERN = /^k-[a-z0-9._-]*-[0-9a-f]{32}$/
