// Real child processes for probe tests, with line-based synchronization (no sleeps) and
// cleanup that never leaves a child behind.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { kernelArgv0, kernelState, pollUntil } from './kernel.js'

/** A child whose stdout lines can be awaited in order. */
export class Child {
  readonly proc: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private readonly lines: string[] = []
  private readonly waiters: Array<() => void> = []
  private stderr = ''

  constructor(command: string, args: string[], opts: SpawnOptions = {}) {
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts })
    this.exited = new Promise((resolve, reject) => {
      this.proc.once('error', reject)
      this.proc.once('exit', (code, signal) => {
        this.wake()
        resolve({ code, signal })
      })
    })
    if (this.proc.stdout) {
      createInterface({ input: this.proc.stdout }).on('line', (line) => {
        this.lines.push(line)
        this.wake()
      })
    }
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString()
    })
    live.add(this)
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('child did not start')
    return this.proc.pid
  }

  /** Next stdout line; rejects if the child exits first. */
  async nextLine(): Promise<string> {
    for (;;) {
      const line = this.lines.shift()
      if (line !== undefined) return line
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`child exited before printing a line; stderr: ${this.stderr}`)
      }
      await new Promise<void>((r) => this.waiters.push(r))
    }
  }

  async expectLine(expected: string): Promise<void> {
    const line = await this.nextLine()
    if (line !== expected) throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(line)}; stderr: ${this.stderr}`)
  }

  /** SIGKILLs the child and waits until it has been reaped. */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL')
    await this.exited
    live.delete(this)
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }
}

const live = new Set<Child>()

/** Kills every child still running; call from afterAll/afterEach. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill()))
}

/** A pid that belonged to a process that has exited and been reaped. */
export async function reapedPid(): Promise<number> {
  const c = new Child('true', [])
  const pid = c.pid
  await c.exited
  live.delete(c)
  return pid
}

/** A long-lived, idle child (`sleep`) that prints nothing; ready once spawned. */
export function sleeper(command = 'sleep'): Child {
  return new Child(command, ['1000'])
}

/**
 * A child that leaves an unreaped zombie: sh starts a background job, then execs sleep, which
 * never waits for it. The job exits only when told to (a line on stdin), after the exec, so
 * sh cannot reap it first. Returns the holder and the zombie-to-be's pid once it has exited.
 */
export async function zombieMaker(): Promise<{ holder: Child; zombie: number }> {
  // Background jobs get /dev/null as stdin unless redirected explicitly: hand them fd 3.
  const holder = new Child('sh', ['-c', 'exec 3<&0; { read x <&3; } & echo $!; exec sleep 1000'])
  const zombie = Number(await holder.nextLine())
  if (!Number.isSafeInteger(zombie) || zombie < 1) throw new Error('bad zombie pid')
  await pollUntil('sh to exec sleep', () => kernelArgv0(holder.pid) === 'sleep')
  holder.proc.stdin?.write('exit\n')
  await pollUntil('the background job to exit', () => kernelState(zombie) === 'Z')
  return { holder, zombie }
}

/** A node child that runs `script`; the child exits when its stdin closes. */
export function nodeChild(script: string, args: string[] = [], opts: SpawnOptions = {}): Child {
  const guard = "process.stdin.on('end', () => process.exit(0)); process.stdin.resume();\n"
  return new Child(process.execPath, ['-e', guard + script, ...args], opts)
}
