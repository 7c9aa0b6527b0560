import * as fs from 'node:fs'
import { type NativeBinding, defaultBinding } from '../binding.js'
import { errnoError } from './file/fsx.js'

/**
 * What a platform says about the filesystem holding a lock root. Linux: statfs f_type (a magic
 * number). macOS: statfs f_fstypename and f_flags, through the addon, because Node's
 * statfs().type there is an index into XNU's table of registered filesystems, which depends on
 * load order, not a magic number.
 */
export type FsInfo = { platform: 'linux'; type: number } | { platform: 'darwin'; typeName: string; flags: number }

/** bsd/sys/mount.h: "filesystem is stored locally". */
export const MNT_LOCAL = 0x00001000

/** Linux filesystems whose kernel locks are emulated, per-client or absent (statfs f_type values). */
const UNTRUSTED_LINUX: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0x517b, 'smb'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x65735546, 'fuse'],
  [0x01021997, 'v9fs'],
  [0x00c36400, 'ceph'],
  [0x5346414f, 'afs'],
  [0x6b414653, 'afs'],
  [0x0bd00bd0, 'lustre'],
  [0x01161970, 'gfs2'],
  [0x7461636f, 'ocfs2'],
  [0x6a656a63, 'virtiofs'],
  [0x73757245, 'coda'],
])

/**
 * macOS network filesystems (their f_fstypename), refused even if a mount claims MNT_LOCAL:
 * their locks are per-client or emulated by the server.
 */
const UNTRUSTED_DARWIN: ReadonlySet<string> = new Set(['nfs', 'smbfs', 'afpfs', 'webdav'])

/** macFUSE registers as "macfuse" (earlier "osxfuse", "osxfusefs"); other FUSE ports vary. */
const FUSE_NAME = /fuse/i

/**
 * The name of an untrusted filesystem (for a message), or null when its kernel locks can be
 * trusted. Pure: the caller reads the platform's facts (filesystemTrust).
 */
export function untrustedFilesystem(info: FsInfo): string | null {
  if (info.platform === 'linux') return UNTRUSTED_LINUX.get(info.type >>> 0) ?? null
  const name = info.typeName
  if (name.length === 0) return 'an unnamed filesystem'
  if (UNTRUSTED_DARWIN.has(name.toLowerCase()) || FUSE_NAME.test(name)) return name
  if ((info.flags & MNT_LOCAL) === 0) return `${name} (not local)`
  return null
}

/**
 * Whether kernel locks on the filesystem holding `path` can be trusted. Throws the underlying
 * errno error unchanged (ENOENT, EACCES...) when the filesystem cannot be read, and an Error
 * when the platform gives no way to tell: never "trusted" by default.
 */
export function filesystemTrust(
  path: string,
  deps: { platform?: NodeJS.Platform; binding?: NativeBinding | null } = {},
): { untrusted: string | null } {
  const platform = deps.platform ?? process.platform
  if (platform === 'linux') return { untrusted: untrustedFilesystem({ platform, type: fs.statfsSync(path).type }) }
  if (platform !== 'darwin') return { untrusted: `a filesystem of ${platform}, where proclease cannot tell` }

  // fs raises Node's own error for a path that cannot be read (and rejects malformed paths);
  // the addon is asked only for what fs does not report.
  fs.statfsSync(path)
  const binding = deps.binding === undefined ? defaultBinding.binding : deps.binding
  if (!binding) throw new Error(`cannot tell the filesystem of ${path}: native binding unavailable`)
  const r = binding.fsInfo(path)
  if (!r.ok) {
    if (r.errno > 0) throw errnoError(r.errno, 'statfs', path)
    throw new Error(`cannot tell the filesystem of ${path} (${r.reason})`)
  }
  return { untrusted: untrustedFilesystem({ platform, typeName: r.typeName, flags: r.flags }) }
}
