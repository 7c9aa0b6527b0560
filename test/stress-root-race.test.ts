// A lock root deleted and re-created while a claim is in flight (a tmp cleaner racing a busy
// key): the claimer counted the OLD directory under the OLD gate, so it must not publish into the
// NEW directory, where another process may already hold the slot it picked.
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { selfHolder } from '../lib/lease/engine.js'
import { FileStore } from '../lib/lease/file/index.js'
import type { ClaimAttempt, ClaimRequest, Hold } from '../lib/lease/store.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

function freshRoot(): string {
  const base = fs.mkdtempSync(join(tmpdir(), 'proclease-rootrace-'))
  dirs.push(base)
  return join(base, 'root')
}

function request(limit = 1): ClaimRequest {
  return { key: 'race', limit, weight: 1, metadata: {}, holder: selfHolder(), fair: false, mode: 'wait', place: null }
}

/** tryClaim until it is no longer a paced retry (the first attempt after a deletion re-creates the root). */
function claim(store: FileStore, req: ClaimRequest): ClaimAttempt {
  for (let i = 0; i < 5; i++) {
    const out = store.claimNow(req)
    if (out.kind !== 'retry') return out
  }
  throw new Error('claim kept retrying')
}

function keyDirEntries(root: string): string[] {
  const [dir] = fs.readdirSync(root)
  return fs.readdirSync(join(root, dir as string)).sort()
}

describe('lock root deleted in the middle of a claim', () => {
  it('the stale claimer does not publish into the re-created directory', async () => {
    const root = freshRoot()
    const other = new FileStore({ root })
    let otherGrant: Hold | null = null
    const stale = new FileStore({
      root,
      faults: {
        afterScan: () => {
          if (otherGrant) return
          // The cleaner strikes after `stale` counted an empty key; `other` comes next.
          fs.rmSync(root, { recursive: true, force: true })
          const got = claim(other, request())
          if (got.kind !== 'granted') throw new Error(`other was not granted: ${got.kind}`)
          otherGrant = got.hold
        },
      },
    })

    const attempt = stale.claimNow(request())
    expect(otherGrant).not.toBeNull()
    // The stale claim must be retried, not granted on the strength of a count of a dead directory.
    expect(attempt.kind).toBe('retry')
    expect(keyDirEntries(root)).toEqual(['gate', 'key', 'slot-0'])

    // The retry sees the live holder: busy, and `other` still owns its slot.
    const again = claim(stale, request())
    expect(again.kind).toBe('busy')
    expect(await other.release(otherGrant as unknown as Hold)).toBe(true)
    expect(keyDirEntries(root)).toEqual(['gate', 'key'])
  })

  it('a stale claim into a free slot of the re-created directory is not published either', async () => {
    const root = freshRoot()
    const other = new FileStore({ root })
    let otherGrant: Hold | null = null
    let stalePick: ClaimAttempt | null = null
    // `stale` holds slot 0 already, so it would pick slot 1 after counting one holder of limit 2.
    const first = claim(new FileStore({ root }), request(2))
    expect(first.kind).toBe('granted')
    const stale = new FileStore({
      root,
      faults: {
        afterScan: () => {
          if (otherGrant) return
          fs.rmSync(root, { recursive: true, force: true })
          const got = claim(other, request(1))
          if (got.kind !== 'granted') throw new Error(`other was not granted: ${got.kind}`)
          otherGrant = got.hold
        },
      },
    })
    stalePick = stale.claimNow(request(2))
    expect(otherGrant).not.toBeNull()
    // Publishing slot-1 next to `other`'s slot-0 would make two holders where `other` asked for one.
    expect(stalePick.kind).toBe('retry')
    expect(keyDirEntries(root)).toEqual(['gate', 'key', 'slot-0'])
    expect(await other.release(otherGrant as unknown as Hold)).toBe(true)
  })
})
