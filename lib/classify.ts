import { ProbeError } from './errors.js'
import { type HostIdentity, type ProcessIdentity, captureIdentity, hostIdentity, isUnknownBootId } from './probes.js'

export type HolderState = 'alive' | 'dead' | 'unverifiable' | 'foreign'

/** What a hold records about its holder, enough for any later judge to classify it. */
export interface HolderRecord {
  pid: number
  starttime: string
  argv0: string | null
  bootId: string
  hostname: string
  machineId: string | null
  pidNamespace: string | null
}

/** Seams: the probe and the judge's own identity, injectable for tests. */
export interface ClassifyContext {
  /** Default: a capture without argv0, which is never evidence (a capturePidInfo fits too). */
  capture?: (pid: number) => ProcessIdentity
  host?: HostIdentity
}

/**
 * Whether the record was written on the judge's machine. The machine id (macOS hardware UUID,
 * Linux /etc/machine-id) decides when both sides have one: a Mac's hostname is rewritten by
 * configd on network changes, so after a reboot a record under the old name would otherwise be
 * foreign forever. The hostname decides only when a machine id is missing. Containers of one
 * host that share a machine id are then one host, which is right: they share the kernel, its
 * boot id and (rule 3) are told apart by pid namespace.
 */
function sameHost(record: HolderRecord, host: HostIdentity): boolean {
  if (isKnownId(record.machineId) && isKnownId(host.machineId)) return record.machineId === host.machineId
  return record.hostname === host.hostname
}

function isKnownId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0
}

/**
 * Classifies a holder. `dead` only on proof; `unverifiable` and `foreign` holders keep their
 * slot. Never throws for a malformed record: what cannot be judged is not dead.
 */
export function classifyHolder(record: HolderRecord, ctx: ClassifyContext = {}): HolderState {
  // Not a record at all (a corrupt file parsed to null, a number...): nothing to judge.
  if (record === null || typeof record !== 'object') return 'unverifiable'
  const host = ctx.host ?? hostIdentity()
  const capture = ctx.capture ?? captureIdentity

  // 1. Another host: nothing here can speak for its processes.
  if (!sameHost(record, host)) return 'foreign'

  // 2. Same host, another boot: every process of that boot is gone. Sentinels prove nothing.
  const bootKnown = !isUnknownBootId(record.bootId) && !isUnknownBootId(host.bootId)
  if (bootKnown && record.bootId !== host.bootId) return 'dead'

  // 3. Pid numbers are not comparable across pid namespaces.
  if (record.pidNamespace && host.pidNamespace && record.pidNamespace !== host.pidNamespace) {
    return 'unverifiable'
  }

  // 4. Ask the kernel.
  let now: ProcessIdentity
  try {
    now = capture(record.pid)
  } catch (err) {
    if (err instanceof ProbeError && (err.code === 'process_gone' || err.code === 'invalid_pid')) return 'dead'
    return 'unverifiable'
  }

  // 5. Same start time: the same process, whatever argv0 says now.
  if (typeof record.starttime !== 'string' || record.starttime.length === 0) return 'unverifiable'
  return now.starttime === record.starttime ? 'alive' : 'dead'
}
