#!/usr/bin/env node
// Compiles and links the macOS addon (binding.gyp's sources for OS=='mac') for arm64 and x86-64
// against Apple's libc headers as zig ships them, so a change that breaks the macOS build fails
// CI on Linux. Nothing here can run a macOS binary: that is the release workflow's job on Macs.
//
// zig 0.11 carries the headers of macOS 11, 12 and 13, and targets macOS >= 11, so the check
// compiles for macOS 11 (the oldest); binding.gyp's lower x64 deployment target (10.13) is only
// exercised by the release workflow. Linking uses `-undefined dynamic_lookup`, as node-gyp does
// on macOS: Node-API symbols come from the node process at load time.
//
// Usage: node scripts/prebuild/check-darwin-compile.mjs
import { execFileSync, execSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheDir, fetchPinned, PINNED } from './pinned.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

// Mach-O cputype of each target, read back from the linked file.
const TARGETS = [
  { arch: 'arm64', triple: 'aarch64-macos.11.0', cputype: 0x0100000c },
  { arch: 'x64', triple: 'x86_64-macos.11.0', cputype: 0x01000007 },
]

/** gyp condition ("OS=='mac'", "OS!='linux' and OS!='mac'") evaluated for one OS. */
function gypCondition(expr, os) {
  const js = expr.replace(/\bOS\b/g, JSON.stringify(os)).replace(/\band\b/g, '&&').replace(/\bor\b/g, '||').replace(/\bnot\b/g, '!')
  if (!/^[\s"'a-z!=&|()]*$/.test(js)) throw new Error(`binding.gyp condition this check cannot read: ${expr}`)
  return Function(`return (${js})`)()
}

/** The one target of binding.gyp with its OS conditions applied for macOS. */
export function macTarget() {
  const text = readFileSync(join(root, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '')
  const [target] = JSON.parse(text).targets
  const merged = { sources: [...target.sources], defines: [...(target.defines ?? [])], include_dirs: [...(target.include_dirs ?? [])], cxxflags: [] }
  for (const [cond, settings] of target.conditions ?? []) {
    if (!gypCondition(cond, 'mac')) continue
    merged.sources.push(...(settings.sources ?? []))
    merged.defines.push(...(settings.defines ?? []))
    merged.include_dirs.push(...(settings.include_dirs ?? []))
    merged.cxxflags.push(...(settings.xcode_settings?.OTHER_CPLUSPLUSFLAGS ?? []))
  }
  merged.include_dirs = merged.include_dirs.map((d) => {
    const m = /^<!\((.*)\)$/.exec(d)
    return m ? execSync(m[1], { cwd: root, encoding: 'utf8' }).trim() : join(root, d)
  })
  return merged
}

function main() {
  const zig = join(fetchPinned(PINNED.zig), 'zig')
  const env = { ...process.env, ZIG_GLOBAL_CACHE_DIR: join(cacheDir(), 'zig-cache'), ZIG_LOCAL_CACHE_DIR: join(cacheDir(), 'zig-cache') }
  const target = macTarget()
  // Node's headers are the same for every platform; node-gyp's macOS defaults (no exceptions, no RTTI).
  const nodeHeaders = process.env.npm_config_nodedir ? join(process.env.npm_config_nodedir, 'include', 'node') : '/usr/include/node'
  const flags = [
    '-std=c++17', '-O2', '-Wall', '-Wextra', '-fno-exceptions', '-fno-rtti',
    '-DBUILDING_NODE_EXTENSION', '-D_DARWIN_USE_64_BIT_INODE=1', '-D_FILE_OFFSET_BITS=64',
    ...target.defines.map((d) => `-D${d}`),
    ...target.include_dirs.map((d) => `-I${d}`),
    `-I${nodeHeaders}`,
    ...target.cxxflags,
  ]
  const scratch = mkdtempSync(join(tmpdir(), 'proclease-darwin-'))
  let failed = false
  try {
    for (const t of TARGETS) {
      const started = Date.now()
      const out = join(scratch, t.arch)
      mkdirSync(out)
      try {
        // One object per source: zig's Mach-O linker takes objects, not several sources at once.
        const objects = target.sources.map((src) => {
          const obj = join(out, basename(src).replace(/\.cc$/, '.o'))
          execFileSync(zig, ['c++', '-target', t.triple, ...flags, '-c', join(root, src), '-o', obj], { cwd: root, env, stdio: 'inherit' })
          return obj
        })
        const addon = join(out, 'proclease.node')
        execFileSync(zig, ['cc', '-target', t.triple, '-shared', '-undefined', 'dynamic_lookup', '-o', addon, ...objects], { env, stdio: 'inherit' })
        const header = readFileSync(addon).subarray(0, 8)
        if (header.readUInt32LE(0) !== 0xfeedfacf || header.readUInt32LE(4) !== t.cputype) throw new Error('the linked file is not a 64-bit Mach-O of that architecture')
        console.log(`check-darwin-compile: ok darwin-${t.arch} (${t.triple}): ${target.sources.join(' ')} in ${((Date.now() - started) / 1000).toFixed(1)}s`)
      } catch (err) {
        failed = true
        console.error(`check-darwin-compile: FAILED darwin-${t.arch}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  if (failed) process.exit(1)
}

main()
