// Issue 10 item 7: the command under `run` knows its hold from its environment
// (PROCLEASE_KEY, PROCLEASE_SLOT, PROCLEASE_FENCE, PROCLEASE_WEIGHT; PROCLEASE_RECOVERED only
// when the grant follows a crashed holder: see recovered.test.ts), on the file store whether
// the command or the wrapper holds the slot.
import { describe, expect, it } from 'vitest'
import { type Lease, tryAcquireLease } from '../../lib/index.js'
import { runCli, setupCliTests } from './harness.js'
import { PRINT_ENV, envOf } from './hold-env.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

/** The slot and fence `run --verbose` reports holding. */
function heldOf(stderr: string): { slot: string; fence: string } {
  const m = /holding slot (\d+) of "[^"]*" \(fence (\d+)\)/.exec(stderr)
  if (!m) throw new Error(`no holding line in ${JSON.stringify(stderr)}`)
  return { slot: m[1] as string, fence: m[2] as string }
}

async function hold(key: string, limit: number, weight = 1): Promise<Lease> {
  const lease = await tryAcquireLease({ key, limit, weight, lockRoot: root })
  if (!lease) throw new Error('test could not take a slot')
  leases.push(lease)
  return lease
}

describe('the environment of the command', () => {
  it.each([[[]], [['--no-inherit']]])('names the key, slot, fence and weight of the hold (%j)', async (extra) => {
    await hold('env', 3)
    const r = await runCli(['run', '--key', 'env', '--limit', '3', '--root', root, '--verbose', ...extra, '--', 'sh', '-c', PRINT_ENV])
    expect(r.code, r.stderr).toBe(0)
    const held = heldOf(r.stderr)
    expect(held.slot).toBe('1')
    expect(envOf(r.stdout)).toEqual({ KEY: 'env', SLOT: held.slot, FENCE: held.fence, WEIGHT: '1', RECOVERED: undefined })
    expect(Object.keys(envOf(r.stdout))).toHaveLength(5)
  })

  it('carries --weight, a -c command sees it too', async () => {
    const r = await runCli(['run', '--key', 'w', '--limit', '4', '--weight', '3', '--root', root, '-c', PRINT_ENV])
    expect(r.code, r.stderr).toBe(0)
    expect(envOf(r.stdout)).toMatchObject({ KEY: 'w', SLOT: '0', WEIGHT: '3', RECOVERED: undefined })
  })

  it('replaces the caller’s own PROCLEASE_* values (a nested run), and unsets a stale PROCLEASE_RECOVERED', async () => {
    const env = { ...process.env, PROCLEASE_KEY: 'outer', PROCLEASE_SLOT: '7', PROCLEASE_FENCE: '1', PROCLEASE_WEIGHT: '9', PROCLEASE_RECOVERED: '{"pid":1}' }
    const r = await runCli(['run', '--key', 'inner', '--root', root, '--verbose', '--', 'sh', '-c', PRINT_ENV], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(envOf(r.stdout)).toEqual({ KEY: 'inner', SLOT: '0', FENCE: heldOf(r.stderr).fence, WEIGHT: '1', RECOVERED: undefined })
  })

  it('keeps the rest of the caller’s environment', async () => {
    const r = await runCli(['run', '--key', 'keep', '--root', root, '--', 'sh', '-c', 'echo "$PROCLEASE_TEST_OTHER"'], {
      env: { ...process.env, PROCLEASE_TEST_OTHER: 'still here' },
    })
    expect(r).toMatchObject({ code: 0, stdout: 'still here\n' })
  })
})
