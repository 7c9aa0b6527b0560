export { ProbeError, LeaseError } from './errors.js'
export type { ProbeErrorCode, LeaseErrorCode } from './errors.js'
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
