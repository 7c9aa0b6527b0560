#!/usr/bin/env node
// Proves the npm tarball works on a machine with no compiler: pack it, install it into fresh
// projects with a PATH holding only node, npm and sh, and load it with require() and import().
// The binary must come from prebuilds/ (the tarball carries no build/), probe this process
// correctly, and nothing may be compiled during install.
//
// Every prebuild in the tarball must be the one node-gyp-build picks for its platform, arch and
// libc; the linux-arm64 one is also loaded and probed by an arm64 node under qemu. A strict
// TypeScript consumer must compile against the packed declarations. dist/ is removed before
// packing: `npm pack` must build it itself (prepack).
//
// Usage: node scripts/check-tarball.mjs [--skip-build] [--expect a,b,...] [--keep DIR]
//   --skip-build  use the prebuilds/ already built (as .ci/run does)
//   --expect      prebuilds that must be in the tarball, as paths under prebuilds/
//                 (the release workflow lists all six)
//   --keep DIR    copy the checked tarball into DIR
import { execFileSync } from 'node:child_process'
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkConsumerTypes } from './tarball/types.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const skipBuild = process.argv.includes('--skip-build')
function option(name) {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : undefined
}
const expected = option('--expect')?.split(',').filter(Boolean) ?? []
const keepDir = option('--keep')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

class CheckFailed extends Error {}
function check(ok, message) {
  if (!ok) throw new CheckFailed(message)
}
function step(msg) {
  console.log(`check-tarball: ${msg}`)
}

/** The environment for child commands: ours minus npm's per-run variables, with a given PATH. */
function cleanEnv(path, extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v
  // Where node-gyp could still be reached, keep it off the network (headers from /usr).
  return { ...env, PATH: path, npm_config_nodedir: '/usr', npm_config_audit: 'false', npm_config_fund: 'false', ...extra }
}

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  } catch (err) {
    throw new CheckFailed(`${cmd} ${args.join(' ')} failed (exit ${err.status}):\n${err.stdout ?? ''}${err.stderr ?? ''}`)
  }
}

function build() {
  const env = cleanEnv(process.env.PATH ?? '')
  const all = process.platform === 'linux' && process.arch === 'x64'
  step(`building prebuilds/ (${all ? 'prebuildify:all' : 'prebuildify'}); dist/ is built by npm pack (prepack)`)
  run('npm', ['run', '--silent', all ? 'prebuildify:all' : 'prebuildify'], { cwd: root, env })
}

function prebuildFiles() {
  const dir = join(root, 'prebuilds')
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.node')).map(String)
}

function pack(dest) {
  // A pack right after a fresh clone and `npm ci` has no dist/: the package must build it.
  rmSync(join(root, 'dist'), { recursive: true, force: true })
  const out = run('npm', ['pack', '--json', '--pack-destination', dest], { cwd: root, env: cleanEnv(process.env.PATH ?? '') })
  const info = JSON.parse(out)[0]
  const tarball = join(dest, info.filename)
  const files = run('tar', ['tzf', tarball]).split('\n').filter(Boolean)
  step(`packed ${info.filename}: ${files.length} files, ${info.size} bytes`)
  check(!files.some((f) => f.startsWith('package/build/')), `tarball contains build/:\n${files.filter((f) => f.startsWith('package/build/')).join('\n')}`)
  check(!files.some((f) => f.startsWith('package/node_modules/')), 'tarball contains node_modules/')
  check(!files.some((f) => f.startsWith('package/test/')), 'tarball contains test/')
  // The fault seams live behind dist/internal.js: tests use them, the package must not ship them.
  check(!files.some((f) => f.startsWith('package/dist/internal')), 'tarball contains the test-only dist/internal bundle')
  const prebuilt = `package/prebuilds/${process.platform}-${process.arch}/`
  check(
    files.some((f) => f.startsWith(prebuilt) && f.endsWith('.node')),
    `tarball has no ${prebuilt}*.node; it has:\n${files.join('\n')}`,
  )
  for (const f of ['package/dist/index.js', 'package/dist/index.cjs', 'package/dist/index.d.ts', 'package/dist/index.d.cts', 'package/dist/cli.js', 'package/package.json', 'package/binding.gyp']) {
    check(files.includes(f), `tarball lacks ${f} (prepack builds dist/)`)
  }
  for (const f of expected) check(files.includes(`package/prebuilds/${f}`), `tarball lacks the expected prebuild prebuilds/${f}`)
  return tarball
}

/** A bin dir with only node, npm and sh: no compiler, no python, no make. */
function toolchainFreePath(base) {
  const bin = join(base, 'bin')
  mkdirSync(bin)
  const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin')
  const links = {
    node: process.execPath,
    npm: join(npmCli, 'npm-cli.js'),
    npx: join(npmCli, 'npx-cli.js'),
    sh: '/bin/sh',
  }
  for (const [name, target] of Object.entries(links)) {
    check(existsSync(target), `cannot find ${name} at ${target}`)
    symlinkSync(target, join(bin, name))
  }
  for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang', 'python', 'python3', 'make']) {
    for (const dir of bin.split(delimiter)) {
      let found = false
      try {
        accessSync(join(dir, tool), constants.X_OK)
        found = true
      } catch {}
      check(!found, `${tool} is reachable on the restricted PATH`)
    }
  }
  return bin
}

// Runs inside the consumer project: loads the package, probes itself against /proc, and reports
// where the binary came from (node-gyp-build's answer and the file actually mapped).
const probeScript = (loader) => `
const fs = require('fs'), path = require('path')
const { createRequire } = require('module')
async function main() {
  const p = ${loader === 'require' ? "require('proclease')" : "await import('proclease')"}
  const pkgdir = path.dirname(require.resolve('proclease/package.json'))
  const ngb = createRequire(path.join(pkgdir, 'package.json'))('node-gyp-build')
  const info = p.capturePidInfo(process.pid)
  const stat = fs.readFileSync('/proc/self/stat', 'latin1')
  const kernelStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  const mapped = [...new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\\n')
    .map((l) => l.slice(l.indexOf('/'))).filter((f) => f.endsWith('.node')))]
  console.log(JSON.stringify({ self: process.pid, pid: info.pid, starttime: info.starttime, kernelStart, bootId: p.currentBootId(),
    resolved: ngb.resolve(pkgdir), mapped, pkgdir, hasBuild: fs.existsSync(path.join(pkgdir, 'build')) }))
}
main().catch((e) => { console.error(e); process.exit(1) })
`

function verifyLoad(project, path, label, extraEnv) {
  for (const loader of ['require', 'import']) {
    const script = join(project, `probe-${loader}.cjs`)
    writeFileSync(script, probeScript(loader))
    const out = run(process.execPath, [script], { cwd: project, env: cleanEnv(path, extraEnv) })
    const r = JSON.parse(out.trim())
    const where = `${label}, ${loader}()${extraEnv.PREBUILDS_ONLY ? ', PREBUILDS_ONLY=1' : ''}`
    check(r.pid === r.self, `${where}: capturePidInfo returned ${JSON.stringify(r)}`)
    check(r.starttime === r.kernelStart, `${where}: starttime ${r.starttime} != kernel ${r.kernelStart}`)
    check(/^[0-9a-f-]{36}$/.test(r.bootId), `${where}: boot id is ${r.bootId}`)
    check(!r.hasBuild, `${where}: the installed package has a build/ directory (something compiled)`)
    const prebuilds = join(r.pkgdir, 'prebuilds') + '/'
    check(r.resolved.startsWith(prebuilds), `${where}: node-gyp-build resolves ${r.resolved}, not a prebuild`)
    check(r.mapped.length === 1 && r.mapped[0] === r.resolved, `${where}: mapped ${JSON.stringify(r.mapped)}, expected ${r.resolved}`)
    step(`ok ${where}: ${r.resolved.slice(r.pkgdir.length + 1)}`)
  }
}

// The installed bin runs and probes through the prebuild too.
function verifyCli(project, path) {
  const bin = join(project, 'node_modules', '.bin', 'proclease')
  check(existsSync(bin), 'the installed package has no proclease bin')
  const out = JSON.parse(run(bin, ['probe', '--json'], { cwd: project, env: cleanEnv(path, {}) }))
  const text = JSON.stringify(out)
  check(/"starttime":"[0-9]+"/.test(text), `proclease probe --json printed ${text}`)
  step('ok installed CLI: proclease probe --json')
}

/** platform, arch and libc a prebuild is for, from prebuildify's naming: <platform>-<arch>/<name>[.<tag>].node */
function prebuildTarget(rel) {
  const [tuple, file] = rel.split('/')
  const [platform, arch] = tuple.split('-')
  const tags = file.split('.').slice(1, -1)
  // prebuildify tags macOS binaries "glibc" too; node-gyp-build then matches them whatever LIBC says.
  const libc = platform === 'linux' ? (tags.find((t) => t === 'glibc' || t === 'musl') ?? 'glibc') : undefined
  return { platform, arch, libc }
}

// node-gyp-build reads platform, arch and libc once, from npm_config_platform, npm_config_arch and
// LIBC when set: a child with those set resolves the way a machine of that kind would.
function verifyResolution(project) {
  const pkgdir = join(project, 'node_modules', pkg.name)
  const prebuilds = join(pkgdir, 'prebuilds')
  const all = readdirSync(prebuilds, { recursive: true }).map(String).filter((f) => f.endsWith('.node'))
  for (const rel of all) {
    const t = prebuildTarget(rel)
    const env = { ...cleanEnv(process.env.PATH ?? ''), PREBUILDS_ONLY: '1', npm_config_platform: t.platform, npm_config_arch: t.arch }
    if (t.libc) env.LIBC = t.libc
    const resolved = run(process.execPath, ['-p', `require('node-gyp-build').resolve(${JSON.stringify(pkgdir)})`], { cwd: pkgdir, env }).trim()
    check(resolved === join(prebuilds, rel), `node-gyp-build on ${t.platform}/${t.arch}/${t.libc ?? '-'} resolves ${resolved}, not prebuilds/${rel}`)
    step(`ok node-gyp-build picks prebuilds/${rel} on ${t.platform}-${t.arch}${t.libc ? ` (${t.libc})` : ''}`)
  }
  return all
}

// Runs in an arm64 node under qemu: loads the package both ways and probes a (native) child,
// checked against the kernel. Its own /proc/self/stat is made up by qemu, so not itself.
const arm64Script = `
const fs = require('fs'), path = require('path'), { spawn } = require('child_process')
async function main() {
  const cjs = require('proclease')
  const esm = await import('proclease')
  const pkgdir = path.dirname(require.resolve('proclease/package.json'))
  const resolved = require(require.resolve('node-gyp-build', { paths: [pkgdir] })).resolve(pkgdir)
  const child = spawn('sleep', ['60'], { stdio: 'ignore' })
  await new Promise((r) => child.once('spawn', r))
  const infos = [cjs.capturePidInfo(child.pid), esm.capturePidInfo(child.pid)]
  const stat = fs.readFileSync('/proc/' + child.pid + '/stat', 'latin1')
  child.kill('SIGKILL')
  console.log(JSON.stringify({ arch: process.arch, resolved: path.relative(pkgdir, resolved), infos, child: child.pid,
    kernelStart: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19], bootId: esm.currentBootId(),
    kernelBootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() }))
}
main().catch((e) => { console.error(e); process.exit(1) })
`

async function verifyArm64(project) {
  const { arm64Node, runArm64 } = await import('./prebuild/qemu.mjs')
  const script = join(project, 'probe-arm64.cjs')
  writeFileSync(script, arm64Script)
  const r = runArm64(arm64Node(), [script], { cwd: project, env: cleanEnv(process.env.PATH ?? '', { PREBUILDS_ONLY: '1' }), stdio: ['ignore', 'pipe', 'pipe'] })
  check(r.status === 0, `the arm64 node under qemu failed (exit ${r.status}):\n${r.stdout}${r.stderr}`)
  const out = JSON.parse(r.stdout.trim())
  check(out.arch === 'arm64', `the emulated node reports arch ${out.arch}`)
  check(out.resolved === 'prebuilds/linux-arm64/proclease.glibc.node', `the arm64 node resolved ${out.resolved}`)
  for (const info of out.infos) {
    check(info.pid === out.child && info.starttime === out.kernelStart, `arm64 capturePidInfo returned ${JSON.stringify(info)}, kernel start ${out.kernelStart}`)
  }
  check(out.bootId === out.kernelBootId, `arm64 currentBootId ${out.bootId} != kernel ${out.kernelBootId}`)
  step('ok linux-arm64 prebuild loads in an arm64 node under qemu (require and import, PREBUILDS_ONLY=1) and probes a child as the kernel does')
}

// A strict TypeScript consumer compiles against the packed declarations, ESM and CJS.
function verifyTypes(project) {
  const checked = checkConsumerTypes(project, root, run)
  check(checked.includes('dist/index.d.ts') && checked.includes('dist/index.d.cts'), `the consumer did not resolve both declaration files: ${checked.join(', ')}`)
  step(`ok strict NodeNext consumer type-checks (ESM and CJS) against ${checked.join(', ')}`)
}

function install(base, name, tarball, path, flags, extraEnv) {
  const project = join(base, name)
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true }))
  step(`npm install ${flags.join(' ')} (${name})${extraEnv.PREBUILDS_ONLY ? ' with PREBUILDS_ONLY=1' : ''}`)
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...flags, tarball], { cwd: project, env: cleanEnv(path, extraEnv) })
  const installed = join(project, 'node_modules', pkg.name)
  check(existsSync(join(installed, 'package.json')), `${name}: ${pkg.name} not installed`)
  check(!existsSync(join(installed, 'build')), `${name}: install created build/ (it compiled instead of using the prebuild)`)
  return project
}

async function main() {
  if (!skipBuild) build()
  const prebuilt = prebuildFiles()
  check(prebuilt.length > 0, 'prebuilds/ is empty: run `npm run prebuildify:all` (or `npm run prebuildify`)')
  step(`prebuilds: ${prebuilt.join(', ')}`)

  // The '#' checks that the package finds its root from a file URL in an unusual install path.
  const base = mkdtempSync(join(tmpdir(), 'proclease-tarball-#-'))
  try {
    const tarball = pack(base)
    const path = toolchainFreePath(base)
    const normal = install(base, 'normal', tarball, path, [], {})
    verifyLoad(normal, path, 'normal install', {})
    verifyLoad(normal, path, 'normal install', { PREBUILDS_ONLY: '1' })
    const noScripts = install(base, 'ignore-scripts', tarball, path, ['--ignore-scripts'], { PREBUILDS_ONLY: '1' })
    verifyLoad(noScripts, path, 'install --ignore-scripts', { PREBUILDS_ONLY: '1' })
    verifyCli(normal, path)
    const all = verifyResolution(noScripts)
    if (all.includes('linux-arm64/proclease.glibc.node') && process.platform === 'linux' && process.arch === 'x64') await verifyArm64(noScripts)
    verifyTypes(normal)
    if (keepDir) {
      mkdirSync(keepDir, { recursive: true })
      copyFileSync(tarball, join(keepDir, basename(tarball)))
      step(`kept ${join(keepDir, basename(tarball))}`)
    }
    step('tarball OK')
  } finally {
    rmSync(base, { recursive: true, force: true })
  }
}

main().catch((err) => {
  if (err instanceof CheckFailed) {
    console.error(`check-tarball: FAILED: ${err.message}`)
    process.exit(1)
  }
  throw err
})
