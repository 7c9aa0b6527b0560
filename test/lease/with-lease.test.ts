// Issue 8, defect 8: when the job fails and releasing its lease fails too, withLease throws a
// SuppressedError carrying both (as `await using` does) instead of losing the job's error.
// The release fails for real: the key's gate file is replaced by a directory while the job runs,
// so the release cannot take the gate (lock_root_unsafe); restoring the gate lets it succeed.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Lease, LeaseError, withLease } from '../../lib/index.js'

let dir = ''
let root = ''
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'proclease-with-lease-'))
  root = join(dir, 'locks')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** Breaks the key's gate so that releasing fails; returns the repair. */
function breakGate(): () => void {
  const keyDirs = readdirSync(root).filter((name) => statSync(join(root, name)).isDirectory())
  expect(keyDirs).toHaveLength(1)
  const gate = join(root, keyDirs[0] as string, 'gate')
  rmSync(gate)
  mkdirSync(gate)
  return () => rmdirSync(gate)
}

async function outcome(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return { value: await run() }
  } catch (err) {
    return err
  }
}

describe('withLease', () => {
  it('keeps the job’s error when the release fails too, with the release failure attached', async () => {
    const jobError = new Error('job exploded')
    let lease: Lease | undefined
    let repair = (): void => {}
    const err = await outcome(() =>
      withLease({ key: 'k', limit: 1, lockRoot: root }, (l) => {
        lease = l
        repair = breakGate()
        throw jobError
      }),
    )
    expect(err).toBeInstanceOf(Error)
    const e = err as Error & { error: unknown; suppressed: unknown }
    expect(e.name).toBe('SuppressedError')
    expect(e.suppressed).toBe(jobError)
    expect(e.error).toBeInstanceOf(LeaseError)
    expect((e.error as LeaseError).code).toBe('lock_root_unsafe')
    expect(e.message).toMatch(/^the job failed \(job exploded\) and releasing its lease failed too \(.+\)$/)

    // The hold was left intact by the failed release: once the gate is back, it releases.
    repair()
    expect(await lease?.release()).toBe(true)
  })

  it('throws the job’s own error when the release succeeds', async () => {
    const jobError = new Error('job exploded')
    expect(await outcome(() => withLease({ key: 'k', limit: 1, lockRoot: root }, () => Promise.reject(jobError)))).toBe(jobError)
    // Released: the slot is free again.
    expect(await outcome(() => withLease({ key: 'k', limit: 1, lockRoot: root, waitMs: 0 }, () => 'again'))).toEqual({ value: 'again' })
  })

  it('throws the release failure when the job succeeded', async () => {
    let lease: Lease | undefined
    let repair = (): void => {}
    const err = await outcome(() =>
      withLease({ key: 'k', limit: 1, lockRoot: root }, (l) => {
        lease = l
        repair = breakGate()
        return 'done'
      }),
    )
    expect(err).toBeInstanceOf(LeaseError)
    expect((err as LeaseError).code).toBe('lock_root_unsafe')
    repair()
    expect(await lease?.release()).toBe(true)
  })
})
