// When no binary loads, the error says what happened on which platform/arch/libc and the two ways
// out, on its first line (probes quote only the first line in their native_unavailable error).
// Real package roots on disk and the real node-gyp-build: a root with prebuilds for other platforms
// only, and a root whose matching prebuild is not a loadable library.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadBinding } from '../lib/binding.js'
import { createProbes } from '../lib/probes.js'
import { probeError } from './helpers/probe-error.js'

const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime
const here = `${process.platform}-${process.arch}`
const hereLibc = process.platform === 'linux' ? (glibc ? `glibc ${glibc}` : 'musl') : null

let scratch: string
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'proclease-binding-load-'))
})
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true })
})

/** A package root holding package.json and the given prebuilds (path under prebuilds/ → bytes). */
function packageRootWith(name: string, prebuilds: Record<string, string>): string {
  const root = join(scratch, name)
  mkdirSync(root)
  writeFileSync(join(root, 'package.json'), '{"name":"proclease"}\n')
  for (const [rel, bytes] of Object.entries(prebuilds)) {
    mkdirSync(join(root, 'prebuilds', rel, '..'), { recursive: true })
    writeFileSync(join(root, 'prebuilds', rel), bytes)
  }
  return root
}

function expectWaysOut(firstLine: string): void {
  expect(firstLine).toContain('npm approve-scripts proclease')
  expect(firstLine).toContain('npm rebuild proclease')
  expect(firstLine).toMatch(/C\+\+ compiler/)
}

describe('loadBinding when no prebuild matches this machine', () => {
  it('names the platform, arch and libc that had none, what ships, and the two ways out', () => {
    const root = packageRootWith('other-platforms', { 'sunos-sparc/proclease.node': 'x', 'aix-ppc64/proclease.node': 'x' })
    const load = loadBinding(root)
    expect(load.binding).toBeNull()
    const firstLine = load.error?.message.split('\n')[0] ?? ''
    expect(firstLine).toContain(`no prebuilt binary for ${here}`)
    if (hereLibc) expect(firstLine).toContain(hereLibc)
    expect(firstLine).toContain('aix-ppc64, sunos-sparc')
    expectWaysOut(firstLine)
    // node-gyp-build's own account stays reachable.
    expect(String((load.error?.cause as Error | undefined)?.message)).toMatch(/No native build was found/)
  })

  it('says so when the package carries no prebuilds at all', () => {
    const load = loadBinding(packageRootWith('no-prebuilds', {}))
    const firstLine = load.error?.message.split('\n')[0] ?? ''
    expect(firstLine).toContain(`no prebuilt binary for ${here}`)
    expect(firstLine).toContain('this copy of the package has no prebuilt binaries')
    expectWaysOut(firstLine)
  })

  it('reaches the probes: native_unavailable quotes the whole explanation', () => {
    const probes = createProbes(loadBinding(packageRootWith('probes', { 'sunos-sparc/proclease.node': 'x' })))
    const err = probeError(() => probes.capturePidInfo(process.pid))
    expect(err.reason).toBe('native_unavailable')
    expect(err.message).toContain(`no prebuilt binary for ${here}`)
    expect(err.message).toContain('npm rebuild proclease')
  })
})

describe('loadBinding when the matching prebuild does not load', () => {
  it('names the file, the loader error and the two ways out', () => {
    const tag = process.platform === 'linux' ? (glibc ? '.glibc' : '.musl') : ''
    const rel = `${here}/proclease${tag}.node`
    const load = loadBinding(packageRootWith('broken', { [rel]: 'not a shared library' }))
    expect(load.binding).toBeNull()
    const firstLine = load.error?.message.split('\n')[0] ?? ''
    expect(firstLine).toContain(`prebuilds/${rel} did not load on ${here}`)
    expect(firstLine).toMatch(/invalid ELF header|not a mach-o file|file too short/i)
    expectWaysOut(firstLine)
  })
})
