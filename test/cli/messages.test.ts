// Issue 8, CLI messages: a busy skip with --busy-exit 0 is silent (its message kept with
// --verbose); counts read `A/L held` everywhere; values that start with a dash.
import { describe, expect, it } from 'vitest'
import { type Lease, tryAcquireLease } from '../../lib/index.js'
import { runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

const node = process.execPath
const ran = ['--', node, '-e', 'console.log("ran")']

async function hold(key: string, limit: number): Promise<Lease> {
  const lease = await tryAcquireLease({ key, limit, lockRoot: root })
  if (!lease) throw new Error('test could not take a slot')
  leases.push(lease)
  return lease
}

describe('run --busy-exit 0', () => {
  it('skips silently: exit 0, nothing on stderr, the command not run', async () => {
    await hold('nightly', 1)
    const r = await runCli(['run', '--key', 'nightly', '--root', root, '--wait', '0', '--busy-exit', '0', ...ran])
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' })
  })

  it('keeps the busy message with --verbose', async () => {
    await hold('nightly', 1)
    const r = await runCli(['run', '--key', 'nightly', '--root', root, '--wait', '0', '--busy-exit', '0', '--verbose', ...ran])
    expect(r).toMatchObject({ code: 0, stdout: '' })
    expect(r.stderr).toBe('proclease: no slot of "nightly" freed within 0s (1/1 held) (lease_busy)\n')
  })

  it('still reports a busy exit with any other code', async () => {
    await hold('nightly', 1)
    const r = await runCli(['run', '--key', 'nightly', '--root', root, '--wait', '0', '--busy-exit', '3', ...ran])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/no slot of "nightly" freed within 0s \(1\/1 held\)/)
  })
})

describe('run --verbose', () => {
  it('says which slot the command holds', async () => {
    await hold('pool', 2)
    const r = await runCli(['run', '--key', 'pool', '--limit', '2', '--root', root, '-v', ...ran])
    expect(r).toMatchObject({ code: 0, stdout: 'ran\n' })
    expect(r.stderr).toMatch(/^proclease: holding slot 1 of "pool" \(fence \d+\)\n$/)
  })
})

describe('counts read A/L held everywhere', () => {
  it('status shows A/? for a limit no record states, and A/L otherwise', async () => {
    const done = await runCli(['run', '--key', 'k', '--root', root, ...ran])
    expect(done.code, done.stderr).toBe(0)
    const empty = await runCli(['status', '--root', root])
    expect(empty).toMatchObject({ code: 0, stdout: '"k"  0/? held\n' })
    await hold('k', 2)
    expect((await runCli(['status', '--root', root])).stdout).toBe('"k"  1/2 held\n  slot 0   alive\n')
  })
})

describe('values that start with a dash', () => {
  it('a key given as --key=-x is taken as is', async () => {
    const r = await runCli(['run', '--key=-x', '--root', root, ...ran])
    expect(r).toMatchObject({ code: 0, stdout: 'ran\n', stderr: '' })
    const st = await runCli(['status', '--root', root, '--json'])
    expect(JSON.parse(st.stdout).keys.map((k: { key: string }) => k.key)).toEqual(['-x'])
  })

  it('a negative number after an option that takes a value is its value', async () => {
    const r = await runCli(['run', '--key', '-1', '--root', root, ...ran])
    expect(r).toMatchObject({ code: 0, stdout: 'ran\n', stderr: '' })
  })

  it('probe takes a negative number as a pid to report, not an option', async () => {
    const r = await runCli(['probe', '-1', '--json'])
    expect(r.code, r.stderr).toBe(1)
    expect(JSON.parse(r.stdout).processes).toEqual([
      { arg: '-1', pid: null, ok: false, error: { code: 'invalid_pid', reason: 'not_a_pid', message: 'not a valid pid: "-1"' } },
    ])
  })
})
