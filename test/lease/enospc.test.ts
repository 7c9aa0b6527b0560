// Issue 8 defect 15: a full disk fails a claim with its errno and leaves nothing behind: no
// temporary files, and a key directory that exists is always listed. Runs on a real, tiny tmpfs
// (mounting needs root; elsewhere the test is skipped with that reason in its name).
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { acquireLease, listLeaseKeys, tryAcquireLease } from '../../lib/index.js'
import { storeFor } from '../../lib/lease/api.js'
import { cleanup, freshRoot, removeLeaseLib } from '../helpers/lease.js'

function canMount(): boolean {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false
  const { base } = freshRoot()
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', base], { stdio: 'ignore' })
    execFileSync('umount', [base], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const mounted: string[] = []
let mountable = false
beforeAll(() => {
  mountable = canMount()
})
afterEach(async () => {
  for (const m of mounted.splice(0)) execFileSync('umount', ['-l', m], { stdio: 'ignore' })
  await cleanup()
})
afterAll(removeLeaseLib)

/** A fresh 256 KiB tmpfs holding a lock root. */
function tinyFs(): { mnt: string; root: string } {
  const { base } = freshRoot()
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', base], { stdio: 'ignore' })
  mounted.push(base)
  return { mnt: base, root: join(base, 'root') }
}

/** Fills the filesystem until writes fail with ENOSPC. */
function fill(mnt: string): void {
  const fd = fs.openSync(join(mnt, 'filler'), 'w')
  const chunk = Buffer.alloc(4096, 1)
  try {
    for (;;) fs.writeSync(fd, chunk)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    fs.closeSync(fd)
  }
}

function leftovers(root: string): string[] {
  const out: string[] = []
  for (const d of fs.readdirSync(root)) {
    for (const f of fs.readdirSync(join(root, d))) if (f.startsWith('tmp-')) out.push(join(d, f))
  }
  return out
}

describe('a full disk (needs root to mount a tmpfs)', () => {
  it('fails claims with ENOSPC, leaves no temporary file, and lists every key directory', async (ctx) => {
    if (!mountable) ctx.skip()
    const { mnt, root } = tinyFs()
    await (await acquireLease({ key: 'old', limit: 2, lockRoot: root })).release()
    fill(mnt)
    // An existing key: the record cannot be written.
    await expect(tryAcquireLease({ key: 'old', limit: 2, lockRoot: root })).rejects.toMatchObject({ code: 'ENOSPC' })
    // A new key: its directory may be made, but not its key file.
    await expect(tryAcquireLease({ key: 'new', limit: 2, lockRoot: root })).rejects.toMatchObject({ code: 'ENOSPC' })
    expect(leftovers(root)).toEqual([])
    // Every key directory is listed: by key where its key file exists, else by directory name.
    const entries = storeFor(root).listKeyEntries()
    expect(entries.length).toBe(fs.readdirSync(root).length)
    expect(entries.map((e) => e.key)).toContain('old')
    expect(listLeaseKeys({ lockRoot: root })).toContain('old')

    fs.rmSync(join(mnt, 'filler'))
    const lease = await tryAcquireLease({ key: 'new', limit: 2, lockRoot: root })
    expect(lease).not.toBeNull()
    await lease?.release()
    expect(listLeaseKeys({ lockRoot: root }).sort()).toEqual(['new', 'old'])
  })
})
