import { resolve } from 'node:path'
import nodeGypBuild from 'node-gyp-build'

/** A failed probe as the addon reports it. */
export interface NativeFailure {
  ok: false
  code: 'invalid_pid' | 'process_gone' | 'capture_error'
  reason: string
  errno: number
}

export type NativeIdentity = { ok: true; pid: number; starttime: string; state?: string; threads?: number } | NativeFailure

export type NativeCapture =
  | { ok: true; pid: number; starttime: string; argv0: string | null; state?: string; threads?: number }
  | NativeFailure

/** statfs f_fstypename and f_flags of a path's filesystem (macOS only; elsewhere unsupported_platform). */
export type NativeFsInfo = { ok: true; typeName: string; flags: number } | NativeFailure

export type NativeId = { ok: true; value: string } | NativeFailure

/** The shape of the compiled addon (native/binding.cc). */
export interface NativeBinding {
  capture(pid: number): NativeCapture
  /** capture() without argv0: no read of the argument area (Linux cmdline, macOS KERN_PROCARGS2). */
  captureIdentity(pid: number): NativeIdentity
  bootId(): NativeId
  machineId(): NativeId
  pidNamespace(): NativeId
  pidMax(): number
  platform(): string
  /** 0 or an errno; never blocks. */
  lockExclusiveNB(fd: number): number
  unlock(fd: number): number
  /** The macOS KERN_PROCARGS2 parser (platform-neutral, for tests): argv[0], or null. */
  parseProcargs2(buf: Buffer): string | null
  /** Whether a KERN_PROCARGS2 answer of `returned` bytes from a `capacity`-byte buffer may be truncated. */
  procargs2Truncated(returned: number, capacity: number): boolean
  /** The filesystem holding `path`, as macOS names it; a failure carries the statfs errno. */
  fsInfo(path: string): NativeFsInfo
  /**
   * Puts a handler that records who sent `signo` in front of the current (Node's) handler, which
   * it chains to. 0, or ESRCH (no handler to chain to), ENOTSUP (origins cannot be told here).
   */
  signalOriginInstall(signo: number): number
  /** Deliveries of `signo` since the process started, by origin; null for a bad signal number. */
  signalOriginCounts(signo: number): { kernel: number; process: number; other: number } | null
  /** getpgid(pid) (0: this process), or -errno. */
  processGroup(pid: number): number
  /** getsid(pid) (0: this process), or -errno. */
  session(pid: number): number
  /** Calls back once when the process exits; throws (with .errno) when it cannot be watched. */
  ExitWatch: new (pid: number, onExit: () => void) => { close(): void }
}

export type BindingLoad = { binding: NativeBinding; error: null } | { binding: null; error: Error }

/**
 * Loads the addon from a package root. Never throws: a missing or broken binary is reported so
 * every probe can fail closed instead of the import crashing.
 */
export function loadBinding(root: string): BindingLoad {
  try {
    return { binding: nodeGypBuild(root) as NativeBinding, error: null }
  } catch (err) {
    return { binding: null, error: err instanceof Error ? err : new Error(String(err)) }
  }
}

/** Where the binary was found, for diagnostics and the no-compiler packaging check. */
export function bindingPath(root: string): string | null {
  try {
    return nodeGypBuild.resolve(root)
  } catch {
    return null
  }
}

// lib/*.ts (tests) and dist/*.{js,cjs} both sit one level below the package root.
export const packageRoot: string = resolve(__dirname, '..')

export const defaultBinding: BindingLoad = loadBinding(packageRoot)
