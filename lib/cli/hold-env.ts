// The environment the command under `run` gets: the caller's, plus what it holds (issue 10: a
// job picks its GPU from PROCLEASE_SLOT, writes PROCLEASE_FENCE to the database it guards, and
// cleans up after a crashed predecessor named in PROCLEASE_RECOVERED).
import type { Lease } from '../lease/engine.js'

/** The variables `run` sets; PROCLEASE_RECOVERED is unset unless this grant followed a crash. */
export const HOLD_ENV = ['PROCLEASE_KEY', 'PROCLEASE_SLOT', 'PROCLEASE_FENCE', 'PROCLEASE_WEIGHT', 'PROCLEASE_RECOVERED'] as const

export function holdEnv(lease: Pick<Lease, 'key' | 'slot' | 'fence' | 'weight' | 'recovered'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    PROCLEASE_KEY: lease.key,
    PROCLEASE_SLOT: String(lease.slot),
    PROCLEASE_FENCE: String(lease.fence),
    PROCLEASE_WEIGHT: String(lease.weight),
  }
  // A value inherited from an outer `run` names another hold's predecessor: never pass it on.
  delete env.PROCLEASE_RECOVERED
  if (lease.recovered !== null) env.PROCLEASE_RECOVERED = JSON.stringify(lease.recovered)
  return env
}
