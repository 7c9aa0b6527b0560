import { type NativeBinding, defaultBinding } from '../../binding.js'

/**
 * Wakes a waiter when any of the given holder processes exits (pidfd / kqueue through the addon),
 * so recovery after a crash does not wait for the next backoff tick. A hint only: the waiter
 * still re-judges the slot under the gate.
 */
/** Beyond this many holders a waiter relies on its backoff (descriptors are not free). */
const MAX_WATCHES = 64

export class ExitWatches {
  private readonly watches = new Map<number, { close(): void }>()
  /** Pids whose exit was already seen: an unreaped zombie stays readable, so never re-arm. */
  private readonly fired = new Set<number>()
  private readonly native: NativeBinding | null

  constructor(
    private readonly onExit: () => void,
    native: NativeBinding | null = defaultBinding.binding,
  ) {
    this.native = native
  }

  /** Watches exactly `pids`; true when every one of them is covered. */
  update(pids: readonly number[]): boolean {
    const wanted = new Set(pids)
    for (const [pid, w] of this.watches) {
      if (!wanted.has(pid)) {
        w.close()
        this.watches.delete(pid)
      }
    }
    if (!this.native || wanted.size > MAX_WATCHES) return false
    let covered = true
    for (const pid of wanted) {
      if (this.watches.has(pid)) continue
      if (this.fired.has(pid)) {
        covered = false
        continue
      }
      try {
        this.watches.set(pid, new this.native.ExitWatch(pid, () => {
          this.watches.delete(pid)
          this.fired.add(pid)
          this.onExit()
        }))
      } catch {
        // Already gone or not watchable here: the backoff covers it.
        covered = false
      }
    }
    return covered
  }

  close(): void {
    for (const w of this.watches.values()) w.close()
    this.watches.clear()
  }
}
