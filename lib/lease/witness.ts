import type { HolderState } from '../classify.js'

/** What the kernel lock on a slot file says, when the record lets it speak. */
export type KernelWitness = 'held' | 'free' | 'not_applicable'

/** What a judge reports about one slot. `corrupt` slots are unreadable and count as held. */
export type SlotState = HolderState | 'corrupt'

export interface Verdict {
  /** The slot counts against the limit. */
  occupied: boolean
  /** The holder is proven gone: the slot may be reclaimed under the gate. */
  reclaim: boolean
  state: SlotState
  /** Kernel lock free while identity says alive: kept occupied, reported for operators. */
  inconsistent: boolean
}

const occupied = (state: SlotState, inconsistent = false): Verdict => ({ occupied: true, reclaim: false, state, inconsistent })
const gone: Verdict = { occupied: false, reclaim: true, state: 'dead', inconsistent: false }

/**
 * Two witnesses: reclaim only when no witness says the holder may be alive and at least one
 * proves it gone.
 */
export function judge(identity: HolderState, kernel: KernelWitness): Verdict {
  if (kernel === 'held') return occupied('alive')
  if (kernel === 'free') {
    // The kernel proves the holder's open file is closed; only a live identity contradicts it.
    return identity === 'alive' ? occupied('alive', true) : gone
  }
  return identity === 'dead' ? gone : occupied(identity)
}
