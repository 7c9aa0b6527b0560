// Fail-closed paths: no loadable binary, and a platform without an implementation. Every
// probe must say capture_error (never process_gone) and the boot id must be the sentinel.
import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { build } from 'tsup'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { packageRoot } from '../lib/binding.js'
import { ProbeError, capturePidInfo, isUnknownBootId } from '../lib/index.js'
import { type Probes, createProbes } from '../lib/probes.js'
import { unsupportedBinding } from './helpers/bindings.js'
import { reapedPid } from './helpers/children.js'
import { probeError } from './helpers/probe-error.js'

describe.each([
  ['a missing native binding', () => createProbes({ binding: null, error: new Error('x') }), 'native_unavailable'],
  ['an unsupported platform', () => createProbes({ binding: unsupportedBinding(), error: null }), 'unsupported_platform'],
])('%s', (_label, make: () => Probes, reason) => {
  it('every probe of a real pid throws capture_error with the reason', async () => {
    const p = make()
    const gone = await reapedPid()
    for (const pid of [process.pid, 1, gone]) {
      for (const capture of [p.capturePidInfo, p.captureIdentity]) {
        const err = probeError(() => capture(pid))
        expect(err.code).toBe('capture_error')
        expect(err.reason).toBe(reason)
      }
    }
  })

  it('still rejects what is not a pid as invalid_pid', () => {
    const p = make()
    for (const pid of [0, -1, 1.5, Number.NaN]) {
      expect(probeError(() => p.capturePidInfo(pid)).code).toBe('invalid_pid')
      expect(probeError(() => p.captureIdentity(pid)).code).toBe('invalid_pid')
    }
    expect(p.pidMax()).toBeNull()
  })

  it('currentBootId is the unknown-<hostname> sentinel, and says so', () => {
    const p = make()
    const id = p.currentBootId()
    expect(id).toBe(`unknown-${hostname()}`)
    expect(isUnknownBootId(id)).toBe(true)
    expect(p.currentBootId()).toBe(id)
  })

  it('hostIdentity knows only the hostname', () => {
    expect(make().hostIdentity()).toEqual({
      bootId: `unknown-${hostname()}`,
      hostname: hostname(),
      machineId: null,
      pidNamespace: null,
    })
  })

  it('verifyPidInfo does not match and does not throw', () => {
    const saved = capturePidInfo(process.pid)
    expect(make().verifyPidInfo(saved)).toEqual({ match: false, reason: 'capture_error' })
  })
})

describe('the built package without any binary', () => {
  let root: string
  let project: string

  beforeAll(async () => {
    // Built from the current sources into a scratch dir, so the check never depends on a stale
    // dist/. The '#' in the path checks that the package root is found from a file URL.
    root = mkdtempSync(join(tmpdir(), 'proclease-nobin-#-'))
    project = join(root, 'project')
    const pkg = join(project, 'node_modules', 'proclease')
    mkdirSync(pkg, { recursive: true })
    await build({
      config: false,
      entry: { index: join(packageRoot, 'lib/index.ts') },
      format: ['esm', 'cjs'],
      outDir: join(pkg, 'dist'),
      dts: false,
      shims: true,
      target: 'node20',
      platform: 'node',
      silent: true,
    })
    cpSync(join(packageRoot, 'package.json'), join(pkg, 'package.json'))
    // node-gyp-build (the one runtime dependency used to load) is there; build/ and prebuilds/ are not.
    const req = createRequire(join(packageRoot, 'package.json'))
    const ngb = dirname(req.resolve('node-gyp-build/package.json'))
    symlinkSync(ngb, join(project, 'node_modules', 'node-gyp-build'), 'dir')
    writeFileSync(join(project, 'package.json'), '{"name":"consumer","private":true}\n')
  }, 60_000)

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  const probe = `
    let out
    try { p.capturePidInfo(process.pid); out = { threw: false } }
    catch (e) { out = { threw: true, name: e.name, code: e.code, reason: e.reason, isProbeError: e instanceof p.ProbeError } }
    out.bootId = p.currentBootId()
    out.unknown = p.isUnknownBootId(out.bootId)
    console.log(JSON.stringify(out))`

  function run(args: string[]): unknown {
    const stdout = execFileSync(process.execPath, args, { cwd: project, encoding: 'utf8' })
    return JSON.parse(stdout.trim())
  }

  const expected = {
    threw: true,
    name: 'ProbeError',
    code: 'capture_error',
    reason: 'native_unavailable',
    isProbeError: true,
    bootId: `unknown-${hostname()}`,
    unknown: true,
  }

  it('require() loads and fails closed', () => {
    expect(run(['-e', `const p = require('proclease');${probe}`])).toEqual(expected)
  })

  it('import() loads and fails closed', () => {
    expect(run(['--input-type=module', '-e', `const p = await import('proclease');${probe}`])).toEqual(expected)
  })
})
