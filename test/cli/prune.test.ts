// Issue 10 item 8 (CLI): `proclease prune [--idle D] [--dry-run] [--json]` removes idle key
// directories (no holder, no waiter) and says which; held keys stay; fences never go back.
//
// Needs the file store's prune: until it lands, pruneLeaseKeys throws store_unsupported on the
// file store and the tests that prune fail (exit 70).
import { describe, expect, it } from 'vitest'
import { type Lease, tryAcquireLease } from '../../lib/index.js'
import { runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

async function hold(key: string): Promise<Lease> {
  const lease = await tryAcquireLease({ key, limit: 1, lockRoot: root })
  if (!lease) throw new Error('test could not take a slot')
  leases.push(lease)
  return lease
}

/** Uses a key once (a command that ends at once): its directory stays, with no holder. */
async function used(key: string): Promise<number> {
  const r = await runCli(['run', '--key', key, '--root', root, '--verbose', '--', 'true'])
  expect(r.code, r.stderr).toBe(0)
  return Number(/\(fence (\d+)\)/.exec(r.stderr)?.[1])
}

async function keys(): Promise<string[]> {
  const r = await runCli(['status', '--root', root, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout).keys.map((k: { key: string }) => k.key)
}

describe('prune', () => {
  it('removes an idle key, keeps a held one, and says what it removed', async () => {
    await used('idle')
    await hold('held')
    expect(await keys()).toEqual(['held', 'idle'])
    const r = await runCli(['prune', '--idle', '0', '--root', root])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('removed "idle"\n1 key removed, 1 kept\n')
    expect(await keys()).toEqual(['held'])
  })

  it('--dry-run only says what it would remove', async () => {
    await used('idle')
    const r = await runCli(['prune', '--idle', '0s', '--dry-run', '--root', root])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('would remove "idle"\n1 key would be removed, 0 kept (dry run)\n')
    expect(await keys()).toEqual(['idle'])
  })

  it('keeps keys used within the idle time (default 1d)', async () => {
    await used('recent')
    for (const args of [[], ['--idle', '1h']]) {
      const r = await runCli(['prune', ...args, '--root', root])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toBe('nothing to remove, 1 key kept\n')
    }
    expect(await keys()).toEqual(['recent'])
  })

  it('--json reports the same', async () => {
    await used('a')
    await hold('b')
    const r = await runCli(['prune', '--idle', '0', '--json', '--root', root])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({ version: 1, dryRun: false, idleMs: 0, removed: ['a'], kept: 1 })
  })

  it('a pruned key used again gets a larger fence than before', async () => {
    const before = await used('again')
    expect((await runCli(['prune', '--idle', '0', '--root', root])).code).toBe(0)
    expect(await keys()).toEqual([])
    expect(await used('again')).toBeGreaterThan(before)
  })

  it('on a missing lock root there is nothing to remove', async () => {
    const r = await runCli(['prune', '--idle', '0', '--root', root])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('nothing to remove, 0 keys kept\n')
  })
})
