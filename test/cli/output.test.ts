// Issue 8, defects 13 and 14: what the CLI writes.
// - Output into a pipe whose reader went away ends quietly with 141 (128 + SIGPIPE), as a Unix
//   tool killed by SIGPIPE does, instead of an EPIPE stack.
// - Text a holder or a user chose (argv0 via process.title, key names, metadata, paths in error
//   messages) reaches the terminal with its control characters escaped, so it cannot rewrite it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tryAcquireLease } from '../../lib/index.js'
import { CLI, DIST_INDEX, Proc, runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

const node = process.execPath

/** Runs the CLI with stdout into a pipe that the reader closes after the first chunk. */
async function closedEarly(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; got: number }> {
  const child = spawn(node, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d: string) => {
    stderr += d
  })
  let got = 0
  child.stdout.once('data', (chunk: Buffer) => {
    got = chunk.length
    child.stdout.destroy()
  })
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  return { code, signal, stderr, got }
}

// Far more than a pipe buffer holds, so the CLI is still writing when the reader goes.
const MANY_ARGS = Array.from({ length: 40_000 }, () => 'x')

describe('output into a closed pipe', () => {
  it.each([
    ['probe', ['probe', ...MANY_ARGS]],
    ['probe --json', ['probe', '--json', ...MANY_ARGS]],
  ])('%s exits 141 without a word', async (_name, args) => {
    const r = await closedEarly(args)
    expect(r.got).toBeGreaterThan(0)
    expect(r.stderr).toBe('')
    expect(r).toMatchObject({ code: 141, signal: null })
  })

  it('status of many keys exits 141 without a word', async () => {
    for (let i = 0; i < 600; i++) {
      const lease = await tryAcquireLease({ key: `${'k'.repeat(240)}-${i}`, limit: 1, lockRoot: root })
      expect(await lease?.release()).toBe(true)
    }
    const r = await closedEarly(['status', '--root', root])
    expect(r.got).toBeGreaterThan(0)
    expect(r.stderr).toBe('')
    expect(r).toMatchObject({ code: 141, signal: null })
  })
})

// C0 controls except the newline ending each line, DEL and C1 controls (U+009B is CSI).
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/
const EVIL = '\x1b[2J\r\u009b2J\x7f'

function expectClean(text: string): void {
  expect(text).not.toMatch(CONTROL)
}

/** A holder whose process.title (hence argv0) carries escape sequences. */
async function evilHolder(key: string, metadata: Record<string, string>): Promise<Proc> {
  const script = `process.title = ${JSON.stringify(`evil${EVIL}title`)};
  import(${JSON.stringify(DIST_INDEX)}).then(async (m) => {
    await m.acquireLease({ key: ${JSON.stringify(key)}, limit: 1, lockRoot: ${JSON.stringify(root)}, metadata: ${JSON.stringify(metadata)} });
    console.log('held ' + process.pid);
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  })
  // Room for the new title: it is written over the original command line. ${'.'.repeat(200)}`
  const p = new Proc(node, ['-e', script])
  await p.waitLine(/^held \d+$/)
  return p
}

describe('control characters in human-readable output', () => {
  it('status --verbose escapes the holder’s argv0, the key and the metadata', async () => {
    const key = `key${EVIL}`
    const holder = await evilHolder(key, { note: `meta${EVIL}` })
    // The holder really did put the sequences into its argv0.
    const json = await runCli(['status', '--root', root, '--json', '--verbose'])
    expect(json.code, json.stderr).toBe(0)
    const parsed = JSON.parse(json.stdout)
    expect(parsed.keys[0].key).toBe(key)
    expect(parsed.keys[0].holders[0].argv0).toContain(EVIL)
    expectClean(json.stdout)

    for (const args of [['status', '--root', root, '--verbose'], ['status', '--root', root, '--key', key, '--verbose']]) {
      const r = await runCli(args)
      expect(r.code, r.stderr).toBe(0)
      expectClean(r.stdout)
      expect(r.stdout).toContain('evil\\u001b[2J\\r\\u009b2J\\u007ftitle')
      expect(r.stdout).toContain('"key\\u001b[2J\\r\\u009b2J\\u007f"')
      expect(r.stdout).toContain('"meta\\u001b[2J\\r\\u009b2J\\u007f"')
    }
    const reclaim = await runCli(['reclaim', '--root', root, '--key', key, '--verbose'])
    expect(reclaim.code, reclaim.stderr).toBe(0)
    expectClean(reclaim.stdout)

    const probe = await runCli(['probe', String(holder.pid)])
    expect(probe.code, probe.stderr).toBe(0)
    expectClean(probe.stdout)
    expect(probe.stdout).toContain('argv0 "evil\\u001b[2J\\r\\u009b2J\\u007ftitle')
  })

  it('run escapes the key in its busy message', async () => {
    const key = `busy${EVIL}`
    const lease = await tryAcquireLease({ key, limit: 1, lockRoot: root })
    if (lease) leases.push(lease)
    const r = await runCli(['run', '--key', key, '--root', root, '--wait', '0', '--', node, '-e', ''])
    expect(r.code).toBe(75)
    expect(r.stderr).toContain('"busy\\u001b[2J\\r\\u009b2J\\u007f"')
    expectClean(r.stderr)
  })

  it('escapes user text echoed by error messages', async () => {
    const file = join(root, '..', `file${EVIL}`)
    writeFileSync(file, '')
    const unsafe = await runCli(['status', '--root', file])
    expect(unsafe.code).toBe(70)
    expect(unsafe.stderr).toMatch(/lock_root_unsafe/)
    expectClean(unsafe.stderr.slice(0, -1))

    const option = await runCli(['status', `--bogus${EVIL}`])
    expect(option.code).toBe(64)
    expectClean(option.stderr.slice(0, -1))

    const probe = await runCli(['probe', `x${EVIL}`])
    expect(probe.code).toBe(1)
    expectClean(probe.stdout)
  })
})
