// Stand-in bindings that reach the fail-closed paths without a different build.
import type { NativeBinding, NativeFailure } from '../../lib/binding.js'

const unsupported: NativeFailure = { ok: false, code: 'capture_error', reason: 'unsupported_platform', errno: 0 }

/** Behaves exactly as native/other.cc does on a platform without an implementation. */
export function unsupportedBinding(): NativeBinding {
  const ENOTSUP = 95
  return {
    capture: () => ({ ...unsupported }),
    captureIdentity: () => ({ ...unsupported }),
    bootId: () => ({ ...unsupported }),
    machineId: () => ({ ...unsupported }),
    pidNamespace: () => ({ ...unsupported }),
    pidMax: () => -1,
    platform: () => 'unsupported',
    lockExclusiveNB: () => ENOTSUP,
    unlock: () => ENOTSUP,
    parseProcargs2: () => null,
    procargs2Truncated: () => true,
    fsInfo: () => ({ ...unsupported }),
    signalOriginInstall: () => ENOTSUP,
    signalOriginCounts: () => ({ kernel: 0, process: 0, other: 0 }),
    processGroup: () => -ENOTSUP,
    session: () => -ENOTSUP,
    // pl_exit_handle_open returns -ENOTSUP, so the constructor throws with .errno.
    ExitWatch: class {
      constructor() {
        throw Object.assign(new Error('cannot watch process'), { errno: ENOTSUP })
      }
      close(): void {}
    },
  }
}

export type CallCounts = Partial<Record<keyof NativeBinding, number>>

/** Wraps a binding so tests can count how often each native entry point is reached. */
export function countingBinding(inner: NativeBinding): { binding: NativeBinding; calls: CallCounts } {
  const calls: CallCounts = {}
  const binding = {} as Record<string, unknown>
  for (const key of Object.keys(inner) as Array<keyof NativeBinding>) {
    const fn = inner[key] as unknown as (...args: unknown[]) => unknown
    // A plain function so constructors (ExitWatch) still work with `new`.
    binding[key] = function (this: unknown, ...args: unknown[]): unknown {
      calls[key] = (calls[key] ?? 0) + 1
      return new.target ? Reflect.construct(fn, args) : fn.apply(inner, args)
    }
  }
  return { binding: binding as unknown as NativeBinding, calls }
}
