// Helpers for the lease engine tests: a private bundle of the library for child processes, real
// child processes driven over stdin/stdout JSON lines (no sleeps for synchronization), fresh
// lock roots, and cleanup that never leaves a process or a directory behind.
import { type ChildProcess, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const FIXTURES = resolve(REPO, 'test', 'lease', 'fixtures')

let bundle: Promise<string> | null = null
const bundleDirs: string[] = []

/**
 * Path of a CommonJS bundle of the library (public API plus internals, one module instance) for
 * fixtures to require. Built from the current sources once per test file into a private path, so
 * it never races with other builds of dist/ (tsup cleans dist/ on every run). `__dirname` is
 * pinned to lib/ so the addon is found from the repository root wherever the bundle lives.
 */
export function leaseLib(): Promise<string> {
  bundle ??= (async () => {
    const cache = join(REPO, 'node_modules', '.cache', 'proclease-lease-tests')
    fs.mkdirSync(cache, { recursive: true })
    const dir = fs.mkdtempSync(join(cache, `b${process.pid}-`))
    bundleDirs.push(dir)
    const outfile = join(dir, 'lib.cjs')
    await build({
      entryPoints: [join(FIXTURES, 'lib-entry.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      outfile,
      external: ['node-gyp-build', 'pg'],
      define: { __dirname: JSON.stringify(join(REPO, 'lib')) },
      logLevel: 'error',
    })
    return outfile
  })()
  return bundle
}

/** Removes this file's bundle; call from afterAll. */
export function removeLeaseLib(): void {
  for (const d of bundleDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  bundle = null
}

const tempDirs: string[] = []

/** A fresh private directory and, inside it, the path of a lock root the library will create. */
export function freshRoot(): { base: string; root: string } {
  const base = fs.mkdtempSync(join(tmpdir(), 'proclease-lt-'))
  tempDirs.push(base)
  return { base, root: join(base, 'root') }
}

export type Msg = { ev: string; [k: string]: unknown }

/** A child process speaking JSON lines: one reply line per command, plus announced events. */
export class JsonChild {
  readonly proc: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private readonly lines: Msg[] = []
  private waiters: Array<() => void> = []
  stderr = ''

  /**
   * `script` is relative to the lease fixtures (or absolute); `wrap` runs node under a wrapper
   * command that execs it (`ip netns exec NS`), so the pid is still the child's own.
   */
  constructor(script: string, args: string[], opts: { wrap?: string[] } = {}) {
    const argv = [...(opts.wrap ?? []), process.execPath, resolve(FIXTURES, script), ...args]
    this.proc = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    this.exited = new Promise((res) => {
      this.proc.once('exit', (code, signal) => {
        this.wake()
        res({ code, signal })
      })
    })
    this.proc.once('error', (err) => {
      this.stderr += String(err)
      this.wake()
    })
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let msg: Msg
      try {
        msg = JSON.parse(line) as Msg
      } catch {
        msg = { ev: 'garbage', line }
      }
      this.lines.push(msg)
      this.wake()
    })
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString()
    })
    this.proc.stdin!.on('error', () => {
      // The child may be gone (killed by a test); writes to it are then moot.
    })
    liveChildren.add(this)
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('child did not start')
    return this.proc.pid
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  send(cmd: unknown): void {
    this.proc.stdin!.write(typeof cmd === 'string' ? `${cmd}\n` : `${JSON.stringify(cmd)}\n`)
  }

  /** The next line; rejects if the child exits before printing one. */
  async next(): Promise<Msg> {
    for (;;) {
      const msg = this.lines.shift()
      if (msg !== undefined) return msg
      if (!this.running) throw new Error(`child ${this.proc.pid} exited (${this.proc.exitCode ?? this.proc.signalCode}) before replying; stderr: ${this.stderr}`)
      await new Promise<void>((r) => this.waiters.push(r))
    }
  }

  /** The next line, which must be of kind `ev`. */
  async expect(ev: string): Promise<Msg> {
    const msg = await this.next()
    if (msg.ev !== ev) throw new Error(`expected ${ev}, got ${JSON.stringify(msg)}; stderr: ${this.stderr}`)
    return msg
  }

  async call(cmd: unknown): Promise<Msg> {
    this.send(cmd)
    return this.next()
  }

  /** SIGKILL (after SIGCONT, so a stopped child dies at once) and wait until reaped. */
  async kill(): Promise<void> {
    if (this.running) {
      this.proc.kill('SIGCONT')
      this.proc.kill('SIGKILL')
    }
    await this.exited
    liveChildren.delete(this)
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
}

const liveChildren = new Set<JsonChild>()
const strayPids = new Set<number>()

/** A process the test did not spawn directly (a grandchild): killed at cleanup if still there. */
export function trackPid(pid: number): void {
  strayPids.add(pid)
}

/** SIGKILLs a tracked stray process now (and forgets it, so cleanup never signals a reused pid). */
export function killTracked(pid: number): void {
  strayPids.delete(pid)
  process.kill(pid, 'SIGKILL')
}

const controllers = new Set<AbortController>()

/**
 * A signal aborted at cleanup: give it to acquires a test leaves waiting in the background, so a
 * failed test never leaves one behind to re-create a removed lock root and claim in it.
 */
export function testSignal(): AbortSignal {
  const ac = new AbortController()
  controllers.add(ac)
  return ac.signal
}

/** Kills every child and stray process, removes every temporary directory. For afterEach. */
export async function cleanup(): Promise<void> {
  for (const ac of controllers) ac.abort()
  controllers.clear()
  for (const pid of strayPids) {
    try {
      process.kill(pid, 'SIGCONT')
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  strayPids.clear()
  try {
    await Promise.all([...liveChildren].map((c) => c.kill()))
  } finally {
    // Even when a child cannot be reaped (it failed to spawn), nothing is left in the temp dir.
    for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  }
}

/** A command-driven lease holder (fixtures/agent.mjs). */
export async function agent(): Promise<JsonChild> {
  const c = new JsonChild('agent.mjs', [await leaseLib()])
  await c.expect('ready')
  return c
}

export interface AcquireCmd {
  key: string
  limit: number
  lockRoot: string
  waitMs?: number
  metadata?: Record<string, string | number | boolean>
}

/** Acquire in an agent; resolves with its reply (acquired / null / error). */
export function acquireIn(
  c: JsonChild,
  opts: AcquireCmd,
  extra: { mode?: 'wait' | 'try'; faults?: Record<string, unknown> } = {},
): Promise<Msg> {
  return c.call({ op: 'acquire', opts, ...extra })
}

/** Acquire in an agent and insist on success. */
export async function holdIn(c: JsonChild, opts: AcquireCmd, extra: { mode?: 'wait' | 'try'; faults?: Record<string, unknown> } = {}): Promise<Msg> {
  const m = await acquireIn(c, opts, extra)
  if (m.ev !== 'acquired') throw new Error(`acquire failed in child: ${JSON.stringify(m)}; stderr: ${c.stderr}`)
  return m
}

export interface StoreAcquireCmd {
  key: string
  limit: number
  waitMs?: number
  metadata?: Record<string, string | number | boolean>
}

/**
 * Acquire in an agent on the store a JSON spec describes (the agent opens it with openStore, once
 * per spec): how the conformance suite drives any store from child processes. `holder`: identity
 * fields recorded instead of the agent's own.
 */
export function acquireInStore(
  c: JsonChild,
  spec: object,
  opts: StoreAcquireCmd,
  extra: { mode?: 'wait' | 'try'; holder?: Record<string, unknown> } = {},
): Promise<Msg> {
  return c.call({ op: 'acquire', spec, opts, mode: extra.mode ?? 'wait', ...(extra.holder ? { holder: extra.holder } : {}) })
}

/** Polls a condition with a generous upper bound (for kernel state such as "stopped" or "gone"). */
export async function until(what: string, cond: () => boolean, maxMs = 20_000): Promise<void> {
  const end = performance.now() + maxMs
  let pause = 1
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, pause))
    pause = Math.min(pause * 2, 50)
  }
}

/** Kernel state letter of a pid (R, S, T, Z...), or null once it has no /proc entry. */
export function procState(pid: number): string | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0] ?? null
  } catch {
    return null
  }
}

/** First NUL-terminated string of /proc/<pid>/cmdline. */
export function procArgv0(pid: number): string {
  const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1')
  const nul = raw.indexOf('\0')
  return nul < 0 ? raw : raw.slice(0, nul)
}

export interface Interval {
  who: string
  start: bigint
  end: bigint
  /** Share of the limit the hold took (1 when absent). */
  weight?: number
}

/**
 * Most weight held at once (unweighted intervals count 1: most intervals open at once). Logged
 * intervals lie inside the real holds (logged after acquire returned, before release was called),
 * so an overlap here is a real overlap; at equal times an end sorts before a start (no overlap
 * claimed without proof).
 */
export function peakConcurrency(intervals: Interval[]): number {
  const events: Array<[bigint, number]> = []
  for (const iv of intervals) {
    if (iv.end < iv.start) throw new Error(`interval of ${iv.who} ends before it starts`)
    const w = iv.weight ?? 1
    events.push([iv.start, +w], [iv.end, -w])
  }
  events.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]))
  let cur = 0
  let peak = 0
  for (const [, d] of events) {
    cur += d
    peak = Math.max(peak, cur)
  }
  return peak
}
