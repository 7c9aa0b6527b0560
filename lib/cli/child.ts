// The command `run` starts: how its end is awaited and what exit status it maps to.
import type { ChildProcess } from 'node:child_process'
import { EXIT, type Io, signalExitCode, writeLine } from './common.js'

export type ChildEnd = { kind: 'exit'; code: number | null; signal: NodeJS.Signals | null } | { kind: 'error'; error: NodeJS.ErrnoException }

export function waitForChild(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      // Without a pid it never started. After a start ('exit' follows), an error can only come
      // from forwarding a signal; that is not fatal to the command.
      if (child.pid === undefined) resolve({ kind: 'error', error })
    })
    child.once('exit', (code, signal) => resolve({ kind: 'exit', code, signal }))
  })
}

/** Whether the child still runs (it may be signalled). */
export function running(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null
}

/** The wrapper's exit status for how the command ended, as a shell would report it. */
export function exitStatusOf(end: ChildEnd, command: string, io: Io): number {
  if (end.kind === 'error') {
    const code = end.error.code ?? 'error'
    writeLine(io.stderr, `proclease: cannot run ${JSON.stringify(command)}: ${end.error.message} (${code})`)
    return code === 'ENOENT' ? EXIT.NOT_FOUND : EXIT.CANNOT_EXECUTE
  }
  if (end.signal !== null) return signalExitCode(end.signal)
  return end.code ?? EXIT.SOFTWARE
}
