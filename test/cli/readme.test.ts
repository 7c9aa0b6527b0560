// Every JavaScript/TypeScript example in README.md runs, against the built package, and prints
// what its comments promise. Each runs in its own default lock root (XDG_RUNTIME_DIR).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { transformSync } from 'esbuild'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { DIST_INDEX, Proc, ROOT, finish } from './harness.js'

afterAll(finish)

interface Example {
  lang: 'js' | 'ts'
  code: string
  line: number
}

function examples(markdown: string): Example[] {
  const out: Example[] = []
  const re = /^```(js|ts)\n([\s\S]*?)^```$/gm
  for (const m of markdown.matchAll(re)) {
    const code = m[2] as string
    if (!code.includes("from 'proclease'")) continue
    out.push({ lang: m[1] as 'js' | 'ts', code, line: markdown.slice(0, m.index).split('\n').length })
  }
  return out
}

// What some examples must print (a marker in the code → text expected on stdout).
const PROMISES: Array<[string, string[]]> = [
  ['const answer = await withLease', ['holding slot 0 of "gpu"', '42']],
  ["console.log(await tryAcquireLease({ key: 'report', limit: 1 }))", ['null', 'lease_busy { active: 1, used: 1, limit: 1 }', 'AbortError aborted']],
  ['async function rebuildCache', ['rebuilding under fence']],
  ["key: 'catalog', limit: 4, weight: 4", ['4 null', 'null']],
  ["metadata: { job: 'train-42' }", ["{ key: 'gpu', active: 1, used: 1, waiting: 0, holders: [ { slot: 0, state: 'alive', weight: 1 } ], limit: 2 }", "true { job: 'train-42' }", "[ 'gpu' ]"]],
  ['let peak = 0', ['at most 2 at once']],
  ['async function onWake', ["[ 'ran', 'busy, retry later' ]"]],
  ['async function publish', ['late job: someone else is publishing', 'job 1: upload failed, rolled back', 'job 2: published', '<p>by job 2, fence ']],
  ["key: 'singleton'", ['1 winner, 4 stood down']],
  ['function write(fence, value)', ['rejected stale write "from A"', 'from B']],
  ['const store = postgresStore(', ['calling the vendor API with fence']],
  ['const me = capturePidInfo(process.pid)', ['{ match: true }', "reason: 'starttime_differs'", '0 invalid_pid not_a_pid', 'alive', 'dead', 'foreign']],
]

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const all = examples(readme)
const distUrl = pathToFileURL(DIST_INDEX).href
const postgresUrl = pathToFileURL(DIST_INDEX.replace(/index\.js$/, 'postgres.js')).href

describe('README examples', () => {
  it('has the examples this test knows about', () => {
    expect(all.length).toBeGreaterThanOrEqual(PROMISES.length)
    for (const [marker] of PROMISES) expect(all.some((e) => e.code.includes(marker)), marker).toBe(true)
  })

  it('starts with a two-command quick start', () => {
    const quick = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme)
    expect(quick?.[1]).toBe('npm ci && npm run demo\nnpm test\n')
  })

  it.each(all.map((e) => [e.line, e] as const))('example at README.md line %i runs', async (_line, example) => {
    const dir = mkdtempSync(join(tmpdir(), 'proclease-readme-'))
    try {
      let code = example.code.replaceAll("from 'proclease'", `from '${distUrl}'`).replaceAll("from 'proclease/postgres'", `from '${postgresUrl}'`)
      if (example.lang === 'ts') code = transformSync(code, { loader: 'ts', format: 'esm', target: 'node20' }).code
      const file = join(dir, 'example.mjs')
      writeFileSync(file, code)
      // The PostgreSQL example runs against the test server (vitest's globalSetup starts it).
      const env = { ...process.env, XDG_RUNTIME_DIR: dir, DATABASE_URL: inject('pgConnectionString') }
      const r = await new Proc(process.execPath, [file], { env, cwd: dir }).closed
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      // console.log wraps long objects: compare with whitespace runs collapsed.
      const flat = (text: string): string => text.replace(/\s+/g, ' ')
      for (const [marker, promised] of PROMISES) {
        if (!example.code.includes(marker)) continue
        for (const text of promised) expect(flat(r.stdout)).toContain(flat(text))
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
