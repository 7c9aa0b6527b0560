export { ProbeError, LeaseError } from './errors.js'
export type { ProbeErrorCode, LeaseErrorCode, Capacity } from './errors.js'
export {
  capturePidInfo,
  currentBootId,
  hostIdentity,
  verifyPidInfo,
  isUnknownBootId,
} from './probes.js'
export type { PidInfo, HostIdentity, VerifyResult } from './probes.js'
export { classifyHolder } from './classify.js'
export type { HolderRecord, HolderState, ClassifyContext } from './classify.js'
export { acquireLease, tryAcquireLease, withLease, inspectLeases, reclaimLeases, listLeaseKeys, pruneLeaseKeys } from './lease/api.js'
export type { InspectOptions, ReclaimOptions, PruneOptions } from './lease/api.js'
export type { Lease, ReleaseOptions } from './lease/engine.js'
export type { LeaseOptions, Metadata } from './lease/options.js'
export type { KeyStatus, HolderStatus, SweepReport, PruneReport, RecoveredHolder, LeaseStore, LostReason, Hold, ClaimAttempt, ClaimRequest, WakeHint, KeyWatch, GateWait } from './lease/store.js'
export type { SlotState } from './lease/witness.js'
export { defaultLockRoot } from './lease/root.js'
