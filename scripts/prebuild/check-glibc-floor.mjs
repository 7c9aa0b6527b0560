#!/usr/bin/env node
// Fails when a Linux glibc binary asks for a symbol version newer than the oldest systems we
// promise to load on: GLIBC_2.17 (RHEL 7, Amazon Linux 2, Ubuntu 14.04 and later) and the
// libstdc++ of GCC 8 (GLIBCXX_3.4.25, CXXABI_1.3.11). The dynamic loader refuses a .node that
// needs a newer version than the system's libraries carry, so "builds on Debian 12" is not
// evidence of "loads on RHEL 8": only the version-needs table of the built file is.
//
// readelf reads the ELF tables of any architecture, so one host tool checks x64 and arm64 alike.
//
// Usage: node scripts/prebuild/check-glibc-floor.mjs [file.node ...]
//   Without arguments: every prebuilds/linux-*/*.glibc.node.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The newest version allowed per version namespace; a namespace not listed here fails closed. */
export const FLOOR = {
  GLIBC: '2.17',
  GLIBCXX: '3.4.25',
  CXXABI: '1.3.11',
  GCC: '7.0.0',
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return Math.sign(d)
  }
  return 0
}

/** Version names from .gnu.version_r, with the library that must provide each. */
function neededVersions(file) {
  const out = execFileSync('readelf', ['-W', '-V', file], { encoding: 'utf8' })
  const needs = []
  let lib = null
  let inNeeds = false
  for (const line of out.split('\n')) {
    if (line.startsWith("Version needs section '.gnu.version_r'")) inNeeds = true
    else if (/^Version \w+ section/.test(line)) inNeeds = false
    if (!inNeeds) continue
    const fileMatch = /File: (\S+)/.exec(line)
    if (fileMatch) lib = fileMatch[1]
    const nameMatch = /Name: (\S+)/.exec(line)
    if (nameMatch) needs.push({ lib, version: nameMatch[1] })
  }
  return needs
}

/** Undefined dynamic symbols by version, to name the calls that raised the floor. */
function symbolsByVersion(file) {
  const out = execFileSync('readelf', ['-W', '--dyn-syms', file], { encoding: 'utf8' })
  const byVersion = new Map()
  for (const line of out.split('\n')) {
    const m = /\sUND\s+([^@\s]+)@(\S+)/.exec(line)
    if (!m) continue
    const list = byVersion.get(m[2]) ?? []
    list.push(m[1])
    byVersion.set(m[2], list)
  }
  return byVersion
}

/** [] when the file is within the floor, else one message per offending version. */
export function floorViolations(file) {
  const symbols = symbolsByVersion(file)
  const problems = []
  for (const { lib, version } of neededVersions(file)) {
    const m = /^([A-Z]+)_([0-9.]+)$/.exec(version)
    const limit = m ? FLOOR[m[1]] : undefined
    if (!m || limit === undefined) {
      problems.push(`${version} (from ${lib}) is not a version namespace this check knows; refusing to guess`)
    } else if (compareVersions(m[2], limit) > 0) {
      const who = symbols.get(version)?.join(', ') ?? 'unknown symbols'
      problems.push(`${version} (from ${lib}) is above the floor ${m[1]}_${limit}: ${who}`)
    }
  }
  return problems
}

/** The highest version per namespace the file needs, for the report. */
export function highestVersions(file) {
  const highest = {}
  for (const { version } of neededVersions(file)) {
    const m = /^([A-Z]+)_([0-9.]+)$/.exec(version)
    if (!m) continue
    if (!highest[m[1]] || compareVersions(m[2], highest[m[1]]) > 0) highest[m[1]] = m[2]
  }
  return highest
}

function defaultFiles() {
  const dir = join(root, 'prebuilds')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((d) => d.startsWith('linux-'))
    .flatMap((d) => readdirSync(join(dir, d)).filter((f) => f.endsWith('.glibc.node')).map((f) => join(dir, d, f)))
}

function main() {
  const files = process.argv.length > 2 ? process.argv.slice(2) : defaultFiles()
  if (files.length === 0) {
    console.error('check-glibc-floor: no Linux glibc prebuild to check (run `npm run prebuildify:all`)')
    process.exit(1)
  }
  let failed = false
  for (const file of files) {
    const name = relative(root, file)
    const problems = floorViolations(file)
    const highest = Object.entries(highestVersions(file)).map(([ns, v]) => `${ns}_${v}`).join(', ')
    if (problems.length === 0) {
      console.log(`check-glibc-floor: ok ${name}: needs at most ${highest}`)
    } else {
      failed = true
      for (const p of problems) console.error(`check-glibc-floor: FAILED ${name}: ${p}`)
    }
  }
  const floor = Object.entries(FLOOR).map(([ns, v]) => `${ns}_${v}`).join(', ')
  if (failed) {
    console.error(`check-glibc-floor: the floor is ${floor}; use calls that exist at that version`)
    process.exit(1)
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main()
