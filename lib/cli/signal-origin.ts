// Whether a signal that reached `proclease run` has already reached its command.
//
// A terminal sends its interrupt (and the SIGHUP that follows a hangup) to its whole foreground
// process group, and the command shares the wrapper's group (run never moves it): forwarding
// such a signal delivers it twice, and tools like terraform or pytest take a second interrupt
// as "abort now". A signal a process sends to the wrapper alone (kill -INT <wrapper>) has reached
// nobody else and must be forwarded. Node gives listeners no siginfo, so the addon records the
// origin of each delivery (native/signal_origin_posix.cc) and this module pairs them with the
// listener calls. Where the origin cannot be known, signals are forwarded, as before.
import { constants } from 'node:os'
import { type NativeBinding, defaultBinding } from '../binding.js'

/** Who sent one delivery: the kernel (a terminal), a process (kill), or not known. */
export type SignalOrigin = 'kernel' | 'process' | 'unknown'

/** How the command and the wrapper sit in process groups and sessions. */
export interface Groups {
  /** The command is in the wrapper's process group (so it got what the group got). */
  commandSharesGroup: boolean
  /** The wrapper leads its session (a hangup's first SIGHUP goes to the session leader alone). */
  wrapperLeadsSession: boolean
}

/** Whether the wrapper must pass `signal` on to the command. Pure. */
export function mustForward(signal: NodeJS.Signals, origin: SignalOrigin, groups: Groups): boolean {
  if (origin !== 'kernel') return true
  // The SIGHUP of a hangup goes to the session leader alone; the group gets its own only when
  // the leader exits, which this wrapper will not do before the command ends.
  if (signal === 'SIGHUP' && groups.wrapperLeadsSession) return true
  // Every other kernel-sent signal here went to a whole process group: ours.
  return !groups.commandSharesGroup
}

/**
 * Pairs the listener calls for some signals with the origins the addon recorded. Call watch()
 * right after process.on(signal, ...) (the recorder goes in front of Node's handler), and take()
 * exactly once in each listener call.
 */
export class SignalOrigins {
  private readonly taken = new Map<NodeJS.Signals, { kernel: number; process: number }>()

  constructor(private readonly native: NativeBinding | null = defaultBinding.binding) {}

  /** True when the origins of `signal` are recorded from now on. */
  watch(signal: NodeJS.Signals): boolean {
    const signo = constants.signals[signal]
    if (!this.native || signo === undefined || this.native.signalOriginInstall(signo) !== 0) return false
    if (!this.taken.has(signal)) {
      const now = this.native.signalOriginCounts(signo)
      if (now === null) return false
      // Deliveries counted before this watch have had their listener calls already.
      this.taken.set(signal, { kernel: now.kernel, process: now.process })
    }
    return true
  }

  /** The origin of the delivery behind this listener call. */
  take(signal: NodeJS.Signals): SignalOrigin {
    const taken = this.taken.get(signal)
    const signo = constants.signals[signal]
    if (!this.native || !taken || signo === undefined) return 'unknown'
    const now = this.native.signalOriginCounts(signo)
    if (now === null) return 'unknown'
    // Listener calls follow deliveries one for one; when several are pending, which call gets
    // which origin does not matter, only that each origin is used once. A process's signal is
    // matched first, so a doubt ends in forwarding.
    if (now.process > taken.process) {
      taken.process++
      return 'process'
    }
    if (now.kernel > taken.kernel) {
      taken.kernel++
      return 'kernel'
    }
    return 'unknown'
  }

  /** Where the command sits, read when a kernel-sent signal has to be judged. */
  groups(commandPid: number): Groups {
    const native = this.native
    if (!native) return { commandSharesGroup: false, wrapperLeadsSession: false }
    const own = native.processGroup(0)
    const command = native.processGroup(commandPid)
    return {
      commandSharesGroup: own >= 0 && command === own,
      wrapperLeadsSession: native.session(0) === process.pid,
    }
  }
}
