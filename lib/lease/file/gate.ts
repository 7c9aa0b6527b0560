// The per-key gate: a small file locked with flock for the few microseconds of each transition.
// The kernel drops the lock when its holder dies, so the gate needs no staleness rules. Locking is
// non-blocking; waiting happens here, paced, and always ends: at its deadline a frozen gate (a
// holder stopped mid-transition) becomes `key_frozen`, never an endless wait.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import type { NativeBinding } from '../../binding.js'
import { LeaseError } from '../../errors.js'
import type { GateWait } from '../store.js'
import { isErrno, sameFile, sleepSync } from './fsx.js'
import { tryLock } from './lock.js'

export const GATE = 'gate'

/** Another process holds the gate right now. */
export class GateBusy {}

/** The key directory (or the whole root) disappeared or was replaced under us. */
export class Vanished {
  constructor(readonly reason: string) {}
}

export const BUSY: unique symbol = Symbol('gate busy')

export interface GateDeps {
  native: NativeBinding | null
  uid: number
  /** Test-only fault: run transitions without the gate. */
  noGate: boolean
  /** Reports a vanished directory (and lets the store forget what it knew about the root). */
  vanished(reason: string): Vanished
}

/**
 * Runs fn while holding the gate of key directory `dir`. Throws GateBusy when another process
 * holds it, Vanished when the directory disappeared. Without `createGate`, a directory that has no
 * gate yet is read without one: nothing was ever published in it under a gate.
 */
export function underGate<T>(deps: GateDeps, dir: string, createGate: boolean, fn: (gateFd: number | null) => T): T {
  if (deps.noGate) return fn(null)
  const gatePath = join(dir, GATE)
  let fd: number
  try {
    fd = fs.openSync(gatePath, fs.constants.O_RDWR | (createGate ? fs.constants.O_CREAT : 0) | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, 0o600)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      if (!createGate && dirExists(dir)) return fn(null)
      throw deps.vanished('key_directory_vanished')
    }
    if (isErrno(err, 'ELOOP', 'EISDIR', 'ENXIO')) {
      throw new LeaseError('lock_root_unsafe', `gate file ${gatePath} is not a regular file`)
    }
    throw err
  }
  try {
    if (!tryLock(deps.native, fd, gatePath)) throw new GateBusy()
    // A gate unlinked after we opened it would serialize nothing: lock only the live path.
    const mine = fs.fstatSync(fd)
    let current: fs.Stats
    try {
      current = fs.lstatSync(gatePath)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw deps.vanished('gate_vanished')
      throw err
    }
    if (!sameFile(current, mine)) throw new Vanished('gate_replaced')
    if (!mine.isFile() || mine.uid !== deps.uid) {
      throw new LeaseError('lock_root_unsafe', `gate file ${gatePath} is not a private regular file`)
    }
    return fn(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function dirExists(dir: string): boolean {
  try {
    return fs.lstatSync(dir).isDirectory()
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false
    throw err
  }
}

/** True while the gate we hold locked is still the one the key directory's path names. */
export function gateIsLive(dir: string, gateFd: number | null): boolean {
  if (gateFd === null) return true
  const mine = fs.fstatSync(gateFd)
  try {
    return sameFile(fs.lstatSync(join(dir, GATE)), mine)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false
    throw err
  }
}

/** One pass: the result, or BUSY when another process is mid-transition. */
export function gateOnce<T>(pass: () => T): T | typeof BUSY {
  try {
    return pass()
  } catch (err) {
    if (err instanceof GateBusy || (err instanceof Vanished && err.reason === 'gate_replaced')) return BUSY
    throw err
  }
}

function frozen(key: string, waitMs: number): LeaseError {
  return new LeaseError(
    'key_frozen',
    `key ${JSON.stringify(key)} is frozen: another process has held its gate for over ${Math.round(waitMs)} ms (stopped in the middle of a transition?)`,
  )
}

function aborted(signal: AbortSignal): LeaseError {
  return new LeaseError('aborted', 'wait for the key aborted', { cause: signal.reason })
}

/** Waits out other processes' transitions, paced, up to `wait.waitMs`. */
export async function gateWaiting<T>(key: string, wait: GateWait, pass: () => T): Promise<T> {
  const { signal } = wait
  if (signal?.aborted) throw aborted(signal)
  const deadline = performance.now() + wait.waitMs
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    const out = gateOnce(pass)
    if (out !== BUSY) return out
    const left = deadline - performance.now()
    if (left <= 0) throw frozen(key, wait.waitMs)
    await delay(Math.min(pause * (0.5 + Math.random()), left), undefined, signal ? { signal } : undefined).catch((err: unknown) => {
      if (signal?.aborted) throw aborted(signal)
      throw err
    })
  }
}

/**
 * The synchronous form, for releaseSync and exit. Bounded: a gate holder that is stopped
 * (SIGSTOP) must not hang our exit; the kernel still drops our slot lock when we go.
 */
export function gateSync<T>(key: string, maxMs: number, pass: () => T): T {
  const deadline = performance.now() + maxMs
  for (let pause = 1; ; pause = Math.min(pause * 2, 20)) {
    const out = gateOnce(pass)
    if (out !== BUSY) return out
    if (performance.now() > deadline) throw frozen(key, maxMs)
    sleepSync(pause)
  }
}
