import { readdirSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
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
 * every probe can fail closed instead of the import crashing. The report's first line says what
 * happened and what to do (probes quote only that line); the loader's own error is its cause.
 */
export function loadBinding(root: string): BindingLoad {
  let file: string
  try {
    file = nodeGypBuild.resolve(root)
  } catch (err) {
    const what = `no prebuilt binary for ${machine()} and none was compiled at install; ${shipped(root)}`
    return { binding: null, error: new Error(`proclease: ${what}. ${WAYS_OUT}`, { cause: err }) }
  }
  try {
    return { binding: nodeGypBuild(root) as NativeBinding, error: null }
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0]
    const what = `the binary ${relative(root, file)} did not load on ${machine()}: ${why}`
    return { binding: null, error: new Error(`proclease: ${what}. ${WAYS_OUT}`, { cause: err }) }
  }
}

const WAYS_OUT =
  'To compile it here (needs python3, make and a C++ compiler): allow proclease\'s install script ' +
  '(recent npm runs it only once approved: `npm approve-scripts proclease`) and reinstall, ' +
  'or run `npm rebuild proclease`.'

/** This machine in prebuildify's terms: platform-arch, and on Linux which libc. */
function machine(): string {
  const tuple = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return tuple
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } }
  const glibc = report.header?.glibcVersionRuntime
  return `${tuple} (${glibc ? `glibc ${glibc}` : 'musl'})`
}

/** The prebuilt binaries this copy of the package carries, e.g. "linux-x64 (glibc), darwin-arm64". */
function shipped(root: string): string {
  let dirs: string[]
  try {
    dirs = readdirSync(join(root, 'prebuilds')).sort()
  } catch {
    dirs = []
  }
  const targets = dirs.flatMap((dir) => {
    let files: string[]
    try {
      files = readdirSync(join(root, 'prebuilds', dir)).filter((f) => f.endsWith('.node'))
    } catch {
      return []
    }
    const libcs = [...new Set(files.flatMap((f) => f.split('.').filter((t) => t === 'glibc' || t === 'musl')))]
    // prebuildify tags macOS binaries "glibc" as well: a libc means something on Linux only.
    return files.length === 0 ? [] : [libcs.length > 0 && dir.startsWith('linux-') ? `${dir} (${libcs.join(', ')})` : dir]
  })
  return targets.length > 0 ? `the package has prebuilt binaries for ${targets.join(', ')}` : 'this copy of the package has no prebuilt binaries'
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
