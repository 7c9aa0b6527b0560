// Runs the built CLI (dist/cli.js) in child processes, with line-based synchronization.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, beforeEach } from 'vitest'
import type { Lease } from '../../lib/index.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * A private snapshot of the dist/ that vitest's global setup built (the same files, byte for
 * byte), laid out as a package root: dist/ copied, build/ and prebuilds/ linked to the real
 * ones, package.json copied. Other builds of dist/ (tsup cleans it first) cannot pull the files
 * out from under a running test.
 */
function snapshotDist(): string {
  const cache = join(ROOT, 'node_modules', '.cache', 'proclease-cli-tests')
  mkdirSync(cache, { recursive: true })
  const snap = mkdtempSync(join(cache, `s${process.pid}-`))
  const dist = join(ROOT, 'dist')
  for (let attempt = 0; ; attempt++) {
    try {
      mkdirSync(join(snap, 'dist'), { recursive: true })
      const files = readdirSync(dist).filter((f) => f.endsWith('.js') || f.endsWith('.cjs'))
      if (!files.includes('cli.js') || !files.includes('index.js')) throw new Error('dist/ is incomplete')
      for (const f of files) copyFileSync(join(dist, f), join(snap, 'dist', f))
      break
    } catch (err) {
      // Someone is rebuilding dist/ right now: it is back within moments.
      if (attempt >= 50) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200)
    }
  }
  copyFileSync(join(ROOT, 'package.json'), join(snap, 'package.json'))
  for (const d of ['build', 'prebuilds']) if (existsSync(join(ROOT, d))) symlinkSync(join(ROOT, d), join(snap, d), 'dir')
  return snap
}

const SNAPSHOT = snapshotDist()
export const CLI = join(SNAPSHOT, 'dist', 'cli.js')
export const DIST_INDEX = join(SNAPSHOT, 'dist', 'index.js')

export interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** A running process whose stdout lines can be awaited. */
export class Proc {
  readonly proc: ChildProcess
  /** Resolves once the process has exited and every holder of its stdio pipes has closed them. */
  readonly closed: Promise<Result>
  private readonly lines: string[] = []
  private readonly waiters: Array<() => void> = []
  private out = ''
  private err = ''
  private ended = false
  /** The pid a `heldScript` command printed, if any. */
  commandPid: number | null = null

  constructor(command: string, args: string[], opts: SpawnOptions = {}) {
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts })
    this.closed = new Promise((resolvePromise, reject) => {
      this.proc.once('error', reject)
      this.proc.once('close', (code, signal) => {
        this.ended = true
        this.wake()
        resolvePromise({ code, signal, stdout: this.out, stderr: this.err })
      })
    })
    this.proc.stdout?.setEncoding('utf8')
    this.proc.stdout?.on('data', (d: string) => {
      this.out += d
      this.wake()
    })
    if (this.proc.stdout) {
      createInterface({ input: this.proc.stdout }).on('line', (line) => {
        const started = /^started (\d+)$/.exec(line)
        if (started) this.commandPid = Number(started[1])
        this.lines.push(line)
        this.wake()
      })
    }
    this.proc.stderr?.setEncoding('utf8')
    this.proc.stderr?.on('data', (d: string) => {
      this.err += d
      this.wake()
    })
    live.add(this)
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('process did not start')
    return this.proc.pid
  }

  get isClosed(): boolean {
    return this.ended
  }

  get stderr(): string {
    return this.err
  }

  /** Next stdout line; rejects if the output ends first. */
  async nextLine(): Promise<string> {
    for (;;) {
      const line = this.lines.shift()
      if (line !== undefined) return line
      if (this.ended) throw new Error(`process ended before printing a line; stderr: ${this.err}`)
      await new Promise<void>((r) => this.waiters.push(r))
    }
  }

  /** Skips stdout lines until one matches; returns it. */
  async waitLine(match: RegExp): Promise<string> {
    for (;;) {
      const line = await this.nextLine()
      if (match.test(line)) return line
    }
  }

  /** Waits until the stdout received so far (lines or not) has matched. */
  async waitStdout(match: RegExp): Promise<void> {
    while (!match.test(this.out)) {
      if (this.ended) throw new Error(`process ended before stdout matched ${match}; stdout: ${JSON.stringify(this.out)}`)
      await new Promise<void>((r) => this.waiters.push(r))
    }
  }

  /** Waits until stderr has matched. */
  async waitStderr(match: RegExp): Promise<void> {
    while (!match.test(this.err)) {
      if (this.ended) throw new Error(`process ended before stderr matched ${match}; stderr: ${this.err}`)
      await new Promise<void>((r) => this.waiters.push(r))
    }
  }

  /** Exit of the process itself (not waiting for inherited pipes to close). */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const p = this.proc
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve({ code: p.exitCode, signal: p.signalCode })
    return new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })))
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }
}

const live = new Set<Proc>()

/** Kills whatever is still running (and closes stdin so waiting grandchildren end too). */
export async function cleanup(): Promise<void> {
  for (const p of live) {
    p.proc.stdin?.end()
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL')
    // A command that outlived its wrapper still holds our stdout pipe until it ends: while the
    // pipe is open (not closed yet), its pid is still its own.
    if (p.commandPid !== null && !p.isClosed) {
      try {
        process.kill(p.commandPid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
  }
  await Promise.all([...live].map((p) => p.closed.catch(() => undefined)))
  live.clear()
}

/** cleanup(), then removes this file's snapshot of dist/: call from afterAll. */
export async function finish(): Promise<void> {
  await cleanup()
  rmSync(SNAPSHOT, { recursive: true, force: true })
}

/** Starts `node dist/cli.js ...args`. */
export function cli(args: string[], opts: SpawnOptions = {}): Proc {
  return new Proc(process.execPath, [CLI, ...args], opts)
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], opts: SpawnOptions = {}): Promise<Result> {
  const p = cli(args, opts)
  p.proc.stdin?.end()
  const r = await p.closed
  live.delete(p)
  return r
}

/** A private temporary lock root (the library creates it 0700) and its removal. */
export function tempRoot(): { root: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'proclease-cli-'))
  return { root: join(dir, 'locks'), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * A node -e script for `run`: waits until the slot record (fd 3, inherited from the wrapper)
 * names this process, runs `body`, prints "started <pid>", then stays alive until its stdin
 * ends — or, with `until: 'signal'`, until it is signalled. (A test that kills the wrapper
 * needs the latter: Node closes a child's stdin pipe when that child exits.)
 */
export function heldScript(body = '', until: 'stdin' | 'signal' = 'stdin'): string {
  const stay =
    until === 'stdin'
      ? "process.stdin.on('end', () => process.exit(0));\nprocess.stdin.resume();"
      : 'setInterval(() => {}, 1 << 30);'
  return `
const fs = require('fs');
function recordPid() {
  const buf = Buffer.alloc(65536);
  const n = fs.readSync(3, buf, 0, buf.length, 0);
  try { return JSON.parse(buf.toString('utf8', 0, n)).pid } catch { return null }
}
function ready() {
  if (recordPid() !== process.pid) return setTimeout(ready, 2);
  ${body}
  console.log('started ' + process.pid);
}
${stay}
ready();
`
}

/**
 * The per-test setup shared by the CLI test files: a fresh lock root before each test (handed to
 * onRoot), and after each test the leases pushed onto the returned array released, every started
 * CLI process ended and the root removed.
 */
export function setupCliTests(onRoot: (root: string) => void): Lease[] {
  const leases: Lease[] = []
  let remove: () => void = () => {}
  beforeEach(() => {
    const t = tempRoot()
    remove = t.remove
    onRoot(t.root)
  })
  afterEach(async () => {
    for (const l of leases.splice(0)) await l.release()
    await cleanup()
    remove()
  })
  afterAll(finish)
  return leases
}
