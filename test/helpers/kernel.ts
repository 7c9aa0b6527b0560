// Independent readers of what the kernel says, used as the oracle for the addon. Deliberately
// written in plain JS from the proc(5) format, sharing no code with native/.
import { readFileSync, readdirSync, statSync } from 'node:fs'

export interface KernelStat {
  comm: string
  state: string
  threads: number
  /** Field 22, ticks since boot, as the exact decimal the kernel printed. */
  starttime: string
}

/** Parses /proc/<pid>/stat. comm may hold anything, so fields are split after the LAST ')'. */
export function kernelStat(pid: number | string): KernelStat {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const open = text.indexOf('(')
  const close = text.lastIndexOf(')')
  if (open < 0 || close < open) throw new Error(`unparseable stat for ${pid}: ${JSON.stringify(text)}`)
  // After ") ": state is field 3, num_threads field 20, starttime field 22.
  const rest = text.slice(close + 2).trim().split(/\s+/)
  const state = rest[0]
  const threads = rest[17]
  const starttime = rest[19]
  if (state === undefined || threads === undefined || starttime === undefined) {
    throw new Error(`short stat for ${pid}: ${JSON.stringify(text)}`)
  }
  return { comm: text.slice(open + 1, close), state, threads: Number(threads), starttime }
}

/** State letter, or null when the pid has no /proc entry (reaped). */
export function kernelState(pid: number): string | null {
  try {
    return kernelStat(pid).state
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

/** First NUL-terminated string of /proc/<pid>/cmdline, null when empty. */
export function kernelArgv0(pid: number): string | null {
  const raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1')
  const nul = raw.indexOf('\0')
  const first = nul < 0 ? raw : raw.slice(0, nul)
  return first.length > 0 ? first : null
}

export function kernelPidMax(): number {
  return Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim())
}

export function kernelBootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
}

/** /etc/machine-id contents, or null when the file does not exist. */
export function kernelMachineId(): string | null {
  try {
    return readFileSync('/etc/machine-id', 'utf8').trim()
  } catch {
    return null
  }
}

export function kernelPidNamespace(): string {
  return String(statSync('/proc/self/ns/pid').ino)
}

/** Thread ids of this process other than its main thread. */
export function otherThreadIds(): number[] {
  return readdirSync('/proc/self/task')
    .map(Number)
    .filter((tid) => tid !== process.pid)
}

/**
 * Polls a condition on kernel state until it holds. Bounded: fails loudly instead of hanging.
 * This waits for the kernel to reach a state, it does not stand in for synchronization.
 */
export async function pollUntil(what: string, check: () => boolean, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs
  for (;;) {
    if (check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
