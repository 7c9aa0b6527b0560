// Kernel advisory locks through the addon. A filesystem that refuses them is `locks_unsupported`.
import { getSystemErrorName } from 'node:util'
import type { NativeBinding } from '../../binding.js'
import { LeaseError } from '../../errors.js'
import { ERRNO, errnoError } from './fsx.js'

const LOCKS_REFUSED = new Set([ERRNO.ENOLCK, ERRNO.EOPNOTSUPP, ERRNO.ENOTSUP, ERRNO.EINVAL, ERRNO.ENOSYS])

/** True when the lock was taken, false when another open file description holds it. */
export function tryLock(native: NativeBinding | null, fd: number, path: string): boolean {
  if (!native) {
    throw new LeaseError('locks_unsupported', 'kernel locks unavailable: the native binding could not be loaded')
  }
  const rc = native.lockExclusiveNB(fd)
  if (rc === 0) return true
  if (rc === ERRNO.EWOULDBLOCK || rc === ERRNO.EAGAIN) return false
  if (LOCKS_REFUSED.has(rc)) {
    throw new LeaseError('locks_unsupported', `the filesystem refuses kernel locks (${getSystemErrorName(-rc)})`)
  }
  throw errnoError(rc, 'flock', path)
}
