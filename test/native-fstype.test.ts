// Issue 12, item 2: which lock roots' filesystems are trusted with kernel locks. Linux answers
// with statfs f_type magic numbers; macOS with f_fstypename and f_flags (MNT_LOCAL) from the
// addon, because Node's statfs().type there is an index into XNU's filesystem table, not a
// magic number. The rule is pure and tested for both shapes here; the Linux path also for real.
import { statfsSync } from 'node:fs'
import { mkdtempSync, rmSync } from 'node:fs'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { type NativeBinding, type NativeFsInfo, defaultBinding } from '../lib/binding.js'
import { MNT_LOCAL, filesystemTrust, untrustedFilesystem } from '../lib/lease/fstype.js'
import { unsupportedBinding } from './helpers/bindings.js'

const dir = mkdtempSync(join(tmpdir(), 'proclease-fstype-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('untrustedFilesystem (linux: statfs f_type)', () => {
  it.each([
    [0x6969, 'nfs'],
    [0x517b, 'smb'],
    [0xff534d42, 'cifs'],
    [0xfe534d42, 'smb2'],
    [0x65735546, 'fuse'],
    [0x01021997, 'v9fs'],
    [0x00c36400, 'ceph'],
    [0x6a656a63, 'virtiofs'],
  ])('refuses magic %s (%s)', (type, name) => {
    expect(untrustedFilesystem({ platform: 'linux', type })).toBe(name)
  })

  it('reads a magic number that Node reports as a negative int32 like the unsigned one', () => {
    expect(untrustedFilesystem({ platform: 'linux', type: 0xff534d42 | 0 })).toBe('cifs')
  })

  it.each([
    ['ext4', 0xef53],
    ['tmpfs', 0x01021994],
    ['btrfs', 0x9123683e],
    ['xfs', 0x58465342],
    ['overlayfs', 0x794c7630],
  ])('trusts %s', (_name, type) => {
    expect(untrustedFilesystem({ platform: 'linux', type })).toBeNull()
  })
})

describe('untrustedFilesystem (darwin: f_fstypename and f_flags)', () => {
  const local = (typeName: string) => ({ platform: 'darwin' as const, typeName, flags: MNT_LOCAL })
  const remote = (typeName: string) => ({ platform: 'darwin' as const, typeName, flags: 0 })

  it('MNT_LOCAL is the bit of bsd/sys/mount.h', () => {
    expect(MNT_LOCAL).toBe(0x1000)
  })

  it.each(['apfs', 'hfs', 'msdos', 'exfat'])('trusts local %s', (name) => {
    expect(untrustedFilesystem(local(name))).toBeNull()
  })

  it.each(['nfs', 'smbfs', 'afpfs', 'webdav'])('refuses network %s, local flag or not', (name) => {
    expect(untrustedFilesystem(remote(name))).toBe(name)
    expect(untrustedFilesystem(local(name))).toBe(name)
  })

  it.each(['macfuse', 'osxfuse', 'osxfusefs', 'fusefs', 'fuse-t', 'FUSE'])('refuses FUSE (%s), even marked local', (name) => {
    expect(untrustedFilesystem(local(name))).toBe(name)
  })

  it('refuses any filesystem without MNT_LOCAL, whatever its name', () => {
    expect(untrustedFilesystem(remote('apfs'))).toBe('apfs (not local)')
    expect(untrustedFilesystem(remote('somethingnew'))).toBe('somethingnew (not local)')
    // Other bits do not stand in for MNT_LOCAL.
    expect(untrustedFilesystem({ platform: 'darwin', typeName: 'apfs', flags: 0xffffefff })).toBe('apfs (not local)')
  })

  it('refuses an empty type name (nothing to go by)', () => {
    expect(untrustedFilesystem(local(''))).toBe('an unnamed filesystem')
  })
})

describe('filesystemTrust', () => {
  it('on linux reads statfs: a temporary directory is trusted', () => {
    expect(filesystemTrust(dir, { platform: 'linux' })).toEqual({
      untrusted: untrustedFilesystem({ platform: 'linux', type: statfsSync(dir).type }),
    })
    expect(filesystemTrust(dir, { platform: 'linux' }).untrusted).toBeNull()
  })

  it('on linux throws the statfs error unchanged (ENOENT)', () => {
    const missing = join(dir, 'missing')
    let expected: unknown
    try {
      statfsSync(missing)
    } catch (err) {
      expected = err
    }
    expect(() => filesystemTrust(missing, { platform: 'linux' })).toThrow(expected as Error)
    try {
      filesystemTrust(missing, { platform: 'linux' })
    } catch (err) {
      expect(err).toMatchObject({ code: 'ENOENT', syscall: 'statfs', path: missing })
    }
  })

  /** A binding whose fsInfo answers `answer`, recording the paths it was asked about. */
  function fsBinding(answer: NativeFsInfo): { binding: NativeBinding; asked: string[] } {
    const asked: string[] = []
    const binding = { ...unsupportedBinding(), fsInfo: (p: string) => (asked.push(p), answer) }
    return { binding, asked }
  }

  it('on darwin asks the addon and applies the name/flags rule', () => {
    const nfs = fsBinding({ ok: true, typeName: 'nfs', flags: 0 })
    expect(filesystemTrust(dir, { platform: 'darwin', binding: nfs.binding })).toEqual({ untrusted: 'nfs' })
    expect(nfs.asked).toEqual([dir])
    const apfs = fsBinding({ ok: true, typeName: 'apfs', flags: MNT_LOCAL })
    expect(filesystemTrust(dir, { platform: 'darwin', binding: apfs.binding })).toEqual({ untrusted: null })
  })

  it('on darwin throws the statfs error of a missing path unchanged, before asking the addon', () => {
    const { binding, asked } = fsBinding({ ok: true, typeName: 'apfs', flags: MNT_LOCAL })
    const missing = join(dir, 'missing')
    expect(() => filesystemTrust(missing, { platform: 'darwin', binding })).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'statfs', path: missing }),
    )
    expect(asked).toEqual([])
  })

  it('on darwin throws the errno error the addon reports (the path vanished in between), as fs would', () => {
    const { binding } = fsBinding({ ok: false, code: 'capture_error', reason: 'statfs_failed', errno: constants.errno.ENOENT })
    let thrown: NodeJS.ErrnoException | undefined
    try {
      filesystemTrust(dir, { platform: 'darwin', binding })
    } catch (err) {
      thrown = err as NodeJS.ErrnoException
    }
    expect(thrown).toBeInstanceOf(Error)
    expect(thrown).toMatchObject({ code: 'ENOENT', errno: -constants.errno.ENOENT, syscall: 'statfs', path: dir })
  })

  it('on darwin without the addon (or without an answer) throws: never trusted by default', () => {
    expect(() => filesystemTrust(dir, { platform: 'darwin', binding: null })).toThrow(/filesystem/)
    const { binding } = fsBinding({ ok: false, code: 'capture_error', reason: 'unsupported_platform', errno: 0 })
    expect(() => filesystemTrust(dir, { platform: 'darwin', binding })).toThrow(/unsupported_platform/)
  })

  it('on another platform is never trusted', () => {
    expect(filesystemTrust(dir, { platform: 'freebsd' }).untrusted).toMatch(/freebsd/)
  })

  it.runIf(process.platform === 'linux')('the real addon on linux leaves the answer to statfs (unsupported)', () => {
    expect(defaultBinding.binding?.fsInfo(dir)).toMatchObject({ ok: false, reason: 'unsupported_platform' })
  })
})
