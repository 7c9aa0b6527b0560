#!/usr/bin/env node
// Runs the native and probe tests in an arm64 node under qemu, against the linux-arm64 prebuild
// loaded through node-gyp-build with PREBUILDS_ONLY=1 (no build/ to fall back on).
//
// The tests run from a scratch copy of lib/, test/ and prebuilds/linux-arm64/ beside an arm64
// node_modules installed from the same lockfile (`npm ci --cpu=arm64`: vitest's bundler and
// transformer have native parts of their own, which must be arm64 too).
//
// Tests that cannot mean anything under emulation are listed in SKIPPED with the reason; they are
// deselected by name, the run fails if any of them is missing from the suite (a stale list), and
// the skip list is printed with the results: nothing is skipped silently.
//
// Usage: node scripts/prebuild/test-arm64.mjs [test files...]   (default: native and probe tests)
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheDir } from './pinned.mjs'
import { arm64Node, runArm64 } from './qemu.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const DEFAULT_FILES = ['test/native.test.ts', 'test/probes.test.ts']

/** Full test name (describe, then it, space-separated as vitest's -t sees it) → why it cannot
 * pass under qemu-user, though it does natively. */
export const SKIPPED = {
  'capturePidInfo on live processes describes this process as the kernel does':
    "qemu-user answers the emulated process's own reads of /proc/<its pid>/stat with a line it composes " +
    "itself (its start time is qemu's estimate, a few ticks off the kernel's), so the independent reading " +
    "the test compares with is not the kernel's. The probe reads through a /proc/<pid> directory fd, which " +
    'qemu passes to the kernel; probes of other processes are checked under emulation.',
  'capturePidInfo on live processes keeps the start time when a live child rewrites process.title':
    "an emulated child's process.title writes qemu's copy of argv, not the memory the kernel shows in " +
    "/proc/<pid>/cmdline (which names qemu itself), so the rename the test waits for never reaches the kernel.",
}

/**
 * node_modules for arm64 from the lockfile, cached per lockfile content. Older copies are left
 * alone: another checkout on this machine may be using one right now.
 */
function arm64Modules() {
  const key = createHash('sha256').update(readFileSync(join(root, 'package-lock.json'))).digest('hex').slice(0, 16)
  const dir = join(cacheDir(), `arm64-modules-${key}`)
  if (existsSync(join(dir, '.complete'))) return join(dir, 'node_modules')
  const tmp = mkdtempSync(join(cacheDir(), '.arm64-modules-'))
  try {
    cpSync(join(root, 'package.json'), join(tmp, 'package.json'))
    cpSync(join(root, 'package-lock.json'), join(tmp, 'package-lock.json'))
    execFileSync('npm', ['ci', '--cpu=arm64', '--os=linux', '--libc=glibc', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: tmp,
      stdio: 'inherit',
    })
    writeFileSync(join(tmp, '.complete'), '')
    rmSync(dir, { recursive: true, force: true })
    renameSync(tmp, dir)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  return join(dir, 'node_modules')
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function main() {
  const files = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT_FILES
  const prebuild = join(root, 'prebuilds', 'linux-arm64')
  if (!existsSync(prebuild)) {
    console.error('test-arm64: no prebuilds/linux-arm64 (run `npm run prebuildify:all`)')
    process.exit(1)
  }
  const node = arm64Node()
  const modules = arm64Modules()

  const scratch = mkdtempSync(join(tmpdir(), 'proclease-arm64-'))
  try {
    for (const f of ['lib', 'test', 'package.json', 'tsconfig.json']) cpSync(join(root, f), join(scratch, f), { recursive: true })
    mkdirSync(join(scratch, 'prebuilds'))
    cpSync(prebuild, join(scratch, 'prebuilds', 'linux-arm64'), { recursive: true })
    symlinkSync(modules, join(scratch, 'node_modules'))
    // No globalSetup: these tests load lib/ and the prebuild, not dist/.
    writeFileSync(
      join(scratch, 'vitest.config.mjs'),
      "export default { test: { include: ['test/**/*.test.ts'], testTimeout: 240000, hookTimeout: 240000, pool: 'forks' } }\n",
    )
    // The binary the tests will load: node-gyp-build's choice in an arm64 process, loaded once.
    const which = runArm64(
      node,
      ['-e', "const b = require('node-gyp-build'); const f = b.resolve(process.argv[1]); b(process.argv[1]); console.log(process.arch + ' ' + f)", scratch],
      { cwd: scratch, env: { ...process.env, PREBUILDS_ONLY: '1' }, stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const expected = `arm64 ${join(scratch, 'prebuilds', 'linux-arm64', 'proclease.glibc.node')}`
    if (which.status !== 0 || which.stdout.trim() !== expected) {
      console.error(`test-arm64: the arm64 node did not load prebuilds/linux-arm64/proclease.glibc.node: ${which.stdout}`)
      process.exit(1)
    }
    console.log('test-arm64: an arm64 node loads prebuilds/linux-arm64/proclease.glibc.node through node-gyp-build')
    const report = join(scratch, 'vitest.json')
    const notSkipped = `^(?!(${Object.keys(SKIPPED).map(escapeRegExp).join('|')})$)`
    console.log(`test-arm64: node ${node}`)
    console.log(`test-arm64: ${files.join(', ')} with PREBUILDS_ONLY=1 against prebuilds/linux-arm64`)
    const started = Date.now()
    const r = runArm64(
      node,
      [join(modules, 'vitest', 'vitest.mjs'), 'run', '--config', 'vitest.config.mjs', '--reporter=default', '--reporter=json', `--outputFile=${report}`, '-t', notSkipped, ...files],
      { cwd: scratch, env: { ...process.env, PREBUILDS_ONLY: '1', CI: 'true' } },
    )
    const seconds = ((Date.now() - started) / 1000).toFixed(0)
    if (!existsSync(report)) {
      console.error(`test-arm64: vitest wrote no report (exit ${r.status}, signal ${r.signal})`)
      process.exit(1)
    }
    const results = JSON.parse(readFileSync(report, 'utf8'))
    const all = results.testResults.flatMap((f) => f.assertionResults.map((a) => ({ ...a, name: [...a.ancestorTitles, a.title].join(' ') })))
    const passed = all.filter((a) => a.status === 'passed')
    const failed = all.filter((a) => a.status === 'failed')
    const skipped = all.filter((a) => a.status !== 'passed' && a.status !== 'failed')
    const stale = Object.keys(SKIPPED).filter((name) => !all.some((a) => a.name === name))
    const unexpected = skipped.filter((a) => !(a.name in SKIPPED))
    for (const [name, why] of Object.entries(SKIPPED)) console.log(`test-arm64: skipped under emulation: ${name}\n    because ${why}`)
    for (const a of failed) console.error(`test-arm64: FAILED ${a.name}`)
    for (const name of stale) console.error(`test-arm64: the skip list names a test that does not exist: ${name}`)
    for (const a of unexpected) console.error(`test-arm64: skipped without a reason in SKIPPED: ${a.name}`)
    console.log(`test-arm64: ${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped in ${seconds}s under qemu`)
    if (r.status !== 0 || failed.length > 0 || stale.length > 0 || unexpected.length > 0 || passed.length === 0) process.exit(1)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

main()
