// `proclease run` where the wrapper stays the holder: on a store whose hold cannot be handed to a
// child (PostgreSQL: the hold lives in this process's database session), and on the file store
// with --no-inherit (the command's own children must never keep the slot). The command gets no
// descriptor, the wrapper releases the slot when the command ends, and a wrapper killed by any
// signal frees the slot at once (its session ends, or its kernel lock closes with it, and the
// identity witness says it is dead).
//
// The hold can be lost while the command runs: the wrapper was stopped past the TTL, or its
// connection dropped. The store aborts lease.signal before anyone else can be granted the slot
// (while this process runs); the wrapper says so at once and, with --on-lost kill, sends the
// command SIGTERM, so that it stops touching what the slot guards. On the file store a hold is
// lost only when its record is removed or replaced under it (a wiped lock root).
import { type ChildProcess, spawn } from 'node:child_process'
import type { Lease } from '../lease/engine.js'
import { exitStatusOf, running, waitForChild } from './child.js'
import { EXIT, type Io, writeLine } from './common.js'
import { holdEnv } from './hold-env.js'
import type { RunConfig } from './run.js'

/** What the wrapper does when the hold is lost while the command runs. */
export type OnLost = 'kill' | 'warn'

/** Why a hold was lost (lease.signal's reason), in an operator's words. */
export function lostText(reason: unknown, store: 'file' | 'postgres' = 'postgres'): string {
  if (store === 'file' && reason === 'lost') {
    return 'its slot record was removed or replaced (lost: the lock root or key directory deleted, or the record removed by hand?)'
  }
  switch (reason) {
    case 'expired':
      return 'it expired (expired: this wrapper could not renew it within the TTL; was it stopped, starved, or the server too slow?)'
    case 'connection_lost':
      return 'the connection to the PostgreSQL server was lost (connection_lost)'
    case 'lost':
      return 'the server no longer has it (lost: reclaimed after it expired, or removed by hand)'
    default:
      return `it was lost (${String(reason)})`
  }
}

/** Runs the command while this process holds the lease; returns the wrapper's exit status. */
export async function runHeld(
  cfg: RunConfig,
  lease: Lease,
  io: Io,
  lost: { announced: boolean },
  setChild: (c: ChildProcess) => void,
): Promise<number> {
  const slot = `slot ${lease.slot} of ${JSON.stringify(cfg.key)}`
  // Checked now, not from the signal alone: a hold past its deadline must not guard a command.
  if (!lease.held()) {
    lost.announced = true
    writeLine(io.stderr, `proclease: the hold on ${slot} was lost before the command started: ${lostText(lease.signal.reason ?? (cfg.store.kind === 'file' ? 'lost' : 'expired'), cfg.store.kind)}; the command was not run`)
    return EXIT.SOFTWARE
  }
  const child = spawn(cfg.command, cfg.args, { stdio: 'inherit', env: holdEnv(lease) })
  const ended = waitForChild(child)
  if (child.pid !== undefined) setChild(child)
  const onLost = (): void => {
    lost.announced = true
    const kill = cfg.onLost === 'kill' && running(child)
    const then = kill ? 'sending SIGTERM to the command (--on-lost kill)' : cfg.onLost === 'warn' ? 'the command runs on unguarded (--on-lost warn)' : 'the command has ended'
    writeLine(io.stderr, `proclease: lost the hold on ${slot} while the command ran: ${lostText(lease.signal.reason, cfg.store.kind)}; ${then}`)
    if (kill) child.kill('SIGTERM')
  }
  lease.signal.addEventListener('abort', onLost, { once: true })
  try {
    return exitStatusOf(await ended, cfg.command, io)
  } finally {
    lease.signal.removeEventListener('abort', onLost)
  }
}
