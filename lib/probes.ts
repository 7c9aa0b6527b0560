import { hostname as osHostname } from 'node:os'
import { type BindingLoad, type NativeBinding, type NativeFailure, defaultBinding } from './binding.js'
import { ProbeError } from './errors.js'

/** What tells one process from any other that had or will have its pid: all a judge needs. */
export interface ProcessIdentity {
  pid: number
  /** Opaque decimal string of the raw kernel start value (Linux clock ticks, macOS µs). */
  starttime: string
  state?: string
  threads?: number
}

/** Identity of one process at one moment. Compare `starttime` only for equality. */
export interface PidInfo extends ProcessIdentity {
  /** Advisory: rewritable by the process, null for zombies and kernel threads. */
  argv0: string | null
}

/** What a holder record says about the host that wrote it, and what a judge knows of its own. */
export interface HostIdentity {
  bootId: string
  hostname: string
  machineId: string | null
  pidNamespace: string | null
}

export type VerifyResult = { match: true } | { match: false; reason: string }

export interface Probes {
  capturePidInfo(pid: number): PidInfo
  /** capturePidInfo without argv0, which it never reads: the probe for judging holders. */
  captureIdentity(pid: number): ProcessIdentity
  currentBootId(): string
  hostIdentity(): HostIdentity
  verifyPidInfo(saved: PidInfo): VerifyResult
  /** Largest pid this kernel hands out (read once), or null when unknown. */
  pidMax(): number | null
}

const SENTINEL_PREFIX = 'unknown-'

/** True for the `unknown-<hostname>` sentinel, which never proves or disproves a reboot. */
export function isUnknownBootId(bootId: string): boolean {
  return typeof bootId !== 'string' || bootId.startsWith(SENTINEL_PREFIX) || bootId.length === 0
}

function describePid(pid: unknown): string {
  return typeof pid === 'number' ? String(pid) : typeof pid
}

function fromNative(f: NativeFailure, pid?: number): ProbeError {
  const what = pid === undefined ? 'probe' : `pid ${pid}`
  switch (f.code) {
    case 'process_gone':
      return new ProbeError('process_gone', f.reason, `${what}: no such process (${f.reason})`, pid)
    case 'invalid_pid':
      return new ProbeError('invalid_pid', f.reason, `${what}: not a valid pid (${f.reason})`, pid)
    default:
      return new ProbeError('capture_error', f.reason, `${what}: cannot verify (${f.reason}${f.errno ? `, errno ${f.errno}` : ''})`, pid)
  }
}

/**
 * Builds the probe functions over one binding. The public functions use the package's own
 * binding; tests pass a failed load or another binding to reach the fail-closed paths.
 */
export function createProbes(load: BindingLoad, hostname: () => string = osHostname): Probes {
  const native = load.binding
  let bootId: string | undefined
  let ids: { machineId: string | null; pidNamespace: string | null } | undefined
  let maxPid: number | null | undefined

  function unavailable(pid?: number): ProbeError {
    const msg = load.error ? load.error.message.split('\n')[0] : 'not loaded'
    return new ProbeError('capture_error', 'native_unavailable', `native binding unavailable: ${msg}`, pid)
  }

  function pidMax(): number | null {
    if (maxPid === undefined) {
      const v = native ? native.pidMax() : -1
      maxPid = v > 0 ? v : null
    }
    return maxPid
  }

  /** Runs one native probe with the checks and error mapping every capture shares. */
  function probe<T extends { ok: true }>(pid: number, call: (b: NativeBinding) => T | NativeFailure): T {
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 1) {
      throw new ProbeError('invalid_pid', 'not_a_pid', `not a valid pid: ${describePid(pid)}`)
    }
    const max = pidMax()
    if (!native) throw unavailable(pid)
    const r = call(native)
    if (!r.ok) {
      // Above pid_max and absent: a pid this kernel could not have handed out. (A live process
      // above a since-lowered pid_max is still reported: the bound never hides a holder.)
      if (max !== null && pid > max && (r.code === 'process_gone' || r.code === 'invalid_pid')) {
        throw new ProbeError('invalid_pid', 'above_pid_max', `pid ${pid} is above this kernel's pid_max (${max})`, pid)
      }
      throw fromNative(r, pid)
    }
    return r
  }

  function identityOf(r: { pid: number; starttime: string; state?: string; threads?: number }): ProcessIdentity {
    const id: ProcessIdentity = { pid: r.pid, starttime: r.starttime }
    if (r.state !== undefined) id.state = r.state
    if (r.threads !== undefined) id.threads = r.threads
    return id
  }

  function capturePidInfo(pid: number): PidInfo {
    const r = probe(pid, (b) => b.capture(pid))
    const { pid: p, starttime, ...rest } = identityOf(r)
    // Key order as before: pid, starttime, argv0, state, threads.
    return { pid: p, starttime, argv0: r.argv0, ...rest }
  }

  function captureIdentity(pid: number): ProcessIdentity {
    return identityOf(probe(pid, (b) => b.captureIdentity(pid)))
  }

  function currentBootId(): string {
    if (bootId === undefined) {
      const r = native ? native.bootId() : null
      // A process cannot outlive its boot, so one genuine read serves for its lifetime.
      bootId = r && r.ok ? r.value : `${SENTINEL_PREFIX}${hostname()}`
    }
    return bootId
  }

  function hostIdentity(): HostIdentity {
    if (ids === undefined) {
      const m = native ? native.machineId() : null
      const ns = native ? native.pidNamespace() : null
      ids = { machineId: m && m.ok ? m.value : null, pidNamespace: ns && ns.ok ? ns.value : null }
    }
    return { bootId: currentBootId(), hostname: hostname(), machineId: ids.machineId, pidNamespace: ids.pidNamespace }
  }

  function verifyPidInfo(saved: PidInfo): VerifyResult {
    // Read each field once: a record parsed from disk may be anything, even an object whose
    // getters throw, and this function promises never to throw.
    let pid: unknown
    let starttime: unknown
    try {
      if (saved === null || typeof saved !== 'object') return { match: false, reason: 'invalid_record' }
      pid = saved.pid
      starttime = saved.starttime
    } catch {
      return { match: false, reason: 'invalid_record' }
    }
    if (typeof starttime !== 'string') return { match: false, reason: 'invalid_record' }
    let now: ProcessIdentity
    try {
      // Only the start time decides: argv0 is not read.
      now = captureIdentity(pid as number)
    } catch (err) {
      return { match: false, reason: err instanceof ProbeError ? err.code : 'capture_error' }
    }
    if (now.starttime !== starttime) return { match: false, reason: 'starttime_differs' }
    return { match: true }
  }

  return { capturePidInfo, captureIdentity, currentBootId, hostIdentity, verifyPidInfo, pidMax }
}

const probes = createProbes(defaultBinding)

/** Identity of a live process; throws ProbeError (`invalid_pid`, `process_gone`, `capture_error`). */
export const capturePidInfo: (pid: number) => PidInfo = probes.capturePidInfo
/** capturePidInfo without argv0 (never read): the default probe of classifyHolder. Not exported by the package. */
export const captureIdentity: (pid: number) => ProcessIdentity = probes.captureIdentity
/** This boot's id, or the `unknown-<hostname>` sentinel when no genuine id can be read. Cached. */
export const currentBootId: () => string = probes.currentBootId
/** Boot id, hostname, machine id and pid namespace of this process's host. */
export const hostIdentity: () => HostIdentity = probes.hostIdentity
/** Whether `saved` still describes a live process. Never throws. */
export const verifyPidInfo: (saved: PidInfo) => VerifyResult = probes.verifyPidInfo
