#!/usr/bin/env node
// Builds every prebuild an x86-64 Debian host can build honestly: linux-x64 and linux-arm64,
// both glibc, with Debian's native and aarch64 cross compilers. macOS and musl prebuilds need
// their own systems and come from the release workflow (.github/workflows/release.yml).
//
// The cross build runs in a scratch copy of the sources, so build/ keeps the host binary that
// the tests and benchmarks load.
//
// Usage: node scripts/prebuild/build-all.mjs [--arch x64,arm64]
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { arch, platform, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const prebuildify = join(root, 'node_modules', 'prebuildify', 'bin.js')
const common = ['--napi', '--strip', '--tag-libc']

/** What each Linux glibc target needs from Debian when it is not the host. */
export const LINUX_TARGETS = {
  x64: { host: true },
  arm64: {
    env: { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++' },
    stripBin: 'aarch64-linux-gnu-strip',
    debianPackages: ['g++-aarch64-linux-gnu', 'binutils-aarch64-linux-gnu'],
  },
}

function hasTool(tool) {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0
}

function buildHost() {
  execFileSync(process.execPath, [prebuildify, ...common], { cwd: root, stdio: 'inherit' })
}

function buildCross(archName, target) {
  const missing = [target.env.CC, target.env.CXX, target.stripBin].filter((t) => !hasTool(t))
  if (missing.length > 0) {
    throw new Error(`cannot cross-build linux-${archName}: ${missing.join(', ')} not found; install the Debian packages ${target.debianPackages.join(' ')}`)
  }
  const scratch = mkdtempSync(join(tmpdir(), `proclease-prebuild-${archName}-`))
  try {
    for (const f of ['binding.gyp', 'package.json', 'native']) cpSync(join(root, f), join(scratch, f), { recursive: true })
    symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'))
    execFileSync(
      process.execPath,
      [prebuildify, ...common, '--arch', archName, '--strip-bin', target.stripBin, '--cwd', scratch, '--out', root],
      { cwd: scratch, stdio: 'inherit', env: { ...process.env, ...target.env } },
    )
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

function main() {
  if (platform() !== 'linux' || arch() !== 'x64') {
    console.error('prebuildify:all builds the Linux prebuilds from an x86-64 Linux host; elsewhere run `npm run prebuildify` for the host only')
    process.exit(1)
  }
  const i = process.argv.indexOf('--arch')
  const wanted = i > 0 ? String(process.argv[i + 1]).split(',') : Object.keys(LINUX_TARGETS)
  const failed = []
  for (const archName of wanted) {
    const target = LINUX_TARGETS[archName]
    if (!target) throw new Error(`unknown arch ${archName}; known: ${Object.keys(LINUX_TARGETS).join(', ')}`)
    const started = Date.now()
    console.log(`prebuildify:all: linux-${archName} (glibc)`)
    try {
      if (target.host) buildHost()
      else buildCross(archName, target)
      console.log(`prebuildify:all: linux-${archName} built in ${((Date.now() - started) / 1000).toFixed(1)}s`)
    } catch (err) {
      console.error(`prebuildify:all: linux-${archName} FAILED: ${err instanceof Error ? err.message : String(err)}`)
      failed.push(archName)
    }
  }
  if (failed.length > 0) process.exit(1)
}

main()
