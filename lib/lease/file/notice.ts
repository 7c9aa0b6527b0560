// Takeover notices: when a hold is removed on proof that its holder is gone, what the next holder
// should know of it (who, since when, its fence and metadata) is kept as `notice-<fence>` until a
// grant of the key takes it. Written under the gate before the dead record goes, so a reclaimer
// killed in between leaves the record (reclaimed again later, the same notice rewritten) rather
// than a lost notice.
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { type SlotRecord, weightOf } from '../records.js'
import type { RecoveredHolder } from '../store.js'
import { isErrno, removeAfterFailure, writeAll } from './fsx.js'
import { noticeName } from './judge.js'

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants
const MAX_NOTICE_BYTES = 64 * 1024

export function recoveredOf(r: SlotRecord): RecoveredHolder {
  return {
    slot: r.slot,
    pid: r.pid,
    hostname: r.hostname,
    argv0: r.argv0,
    acquiredAt: r.acquiredAt,
    fence: r.fence,
    weight: weightOf(r),
    metadata: r.metadata,
  }
}

/** Writes the notice of a removed record, atomically (temporary file, then rename). */
export function writeNotice(dir: string, record: SlotRecord): void {
  const tmp = join(dir, `tmp-${randomBytes(16).toString('hex')}`)
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
  try {
    try {
      writeAll(fd, Buffer.from(JSON.stringify(recoveredOf(record)) + '\n'))
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, join(dir, noticeName(record.fence)))
  } catch (err) {
    removeAfterFailure(tmp)
    throw err
  }
}

/** The notice of fence `fence`; null when it is gone or is not a notice we wrote. */
export function readNotice(dir: string, fence: number): RecoveredHolder | null {
  let fd: number
  try {
    fd = fs.openSync(join(dir, noticeName(fence)), O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ELOOP', 'ENXIO')) return null
    throw err
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile() || st.size > MAX_NOTICE_BYTES) return null
    const raw: unknown = JSON.parse(fs.readFileSync(fd, 'utf8'))
    return isRecovered(raw) && raw.fence === fence ? raw : null
  } catch (err) {
    if (err instanceof SyntaxError) return null
    throw err
  } finally {
    fs.closeSync(fd)
  }
}

function isRecovered(v: unknown): v is RecoveredHolder {
  if (v === null || typeof v !== 'object') return false
  const r = v as Record<string, unknown>
  return (
    Number.isSafeInteger(r.slot) &&
    'pid' in r &&
    typeof r.hostname === 'string' &&
    (r.argv0 === null || typeof r.argv0 === 'string') &&
    typeof r.acquiredAt === 'string' &&
    Number.isSafeInteger(r.fence) &&
    Number.isSafeInteger(r.weight) &&
    r.metadata !== null &&
    typeof r.metadata === 'object'
  )
}

/** Removes a taken (or unreadable) notice; already gone is fine. */
export function dropNotice(dir: string, fence: number): void {
  try {
    fs.unlinkSync(join(dir, noticeName(fence)))
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err
  }
}
