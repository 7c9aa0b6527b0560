// Issue 10 item 4 (CLI): `run --weight N`, `--no-fair`, and `status` showing weights (per holder
// and used/limit) in text and JSON.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { type Lease, tryAcquireLease } from '../../lib/index.js'
import { CLI, Proc, cli, runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

const node = process.execPath

async function hold(key: string, limit: number, weight: number): Promise<Lease> {
  const lease = await tryAcquireLease({ key, limit, weight, lockRoot: root })
  if (!lease) throw new Error('test could not take a slot')
  leases.push(lease)
  return lease
}

describe('run --weight', () => {
  it('takes N of the limit: what does not fit is busy, what fits runs beside it', async () => {
    const p = cli(['run', '--key', 'gpu', '--limit', '4', '--weight', '3', '--root', root, '-c', 'echo started; read line || :'])
    expect(await p.nextLine()).toBe('started')
    const busy = await runCli(['run', '--key', 'gpu', '--limit', '4', '--weight', '2', '--wait', '0', '--root', root, '--', 'true'])
    expect(busy.code, busy.stderr).toBe(75)
    expect(busy.stderr).toBe('proclease: no room for weight 2 in "gpu" freed within 0s (3/4 used by 1 holder) (lease_busy)\n')
    const fits = await runCli(['run', '--key', 'gpu', '--limit', '4', '--wait', '0', '--root', root, '--', 'true'])
    expect(fits.code, fits.stderr).toBe(0)
    p.proc.stdin?.end()
    expect((await p.closed).code).toBe(0)
  })

  it('--weight equal to the limit is an exclusive hold', async () => {
    await hold('rw', 4, 1)
    const writer = await runCli(['run', '--key', 'rw', '--limit', '4', '--weight', '4', '--wait', '0', '--root', root, '--', 'true'])
    expect(writer.code, writer.stderr).toBe(75)
    expect(writer.stderr).toMatch(/no room for weight 4 in "rw" freed within 0s \(1\/4 used by 1 holder\)/)
  })

  it('--no-fair is accepted and still respects the weights', async () => {
    await hold('nf', 2, 2)
    const r = await runCli(['run', '--key', 'nf', '--limit', '2', '--no-fair', '--wait', '0', '--root', root, '--', 'true'])
    expect(r.code, r.stderr).toBe(75)
    const free = await runCli(['run', '--key', 'nf2', '--limit', '2', '--no-fair', '--wait', '0', '--root', root, '--', 'true'])
    expect(free.code, free.stderr).toBe(0)
  })
})

describe('status shows weights', () => {
  it('per holder and as used/limit, in text and JSON', async () => {
    await hold('mix', 8, 3)
    await hold('mix', 8, 1)
    await hold('plain', 2, 1)
    const text = await runCli(['status', '--root', root])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toBe(['"mix"  2/8 held, 4/8 used', '  slot 0   alive       weight 3', '  slot 1   alive       weight 1', '"plain"  1/2 held', '  slot 0   alive', ''].join('\n'))

    const json = await runCli(['status', '--root', root, '--json'])
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual({
      version: 1,
      keys: [
        { key: 'mix', limit: 8, active: 2, used: 4, waiting: 0, holders: [{ slot: 0, state: 'alive', weight: 3 }, { slot: 1, state: 'alive', weight: 1 }] },
        { key: 'plain', limit: 2, active: 1, used: 1, waiting: 0, holders: [{ slot: 0, state: 'alive', weight: 1 }] },
      ],
    })

    const verbose = await runCli(['status', '--root', root, '--key', 'mix', '--verbose'])
    expect(verbose.stdout).toMatch(/^  slot 0   alive {6} pid \d+ .* fence \d+  weight 3$/m)
  })
})

describe('on a terminal', () => {
  const hasScript = process.platform === 'linux' && spawnSync('script', ['--version']).status === 0

  it.skipIf(!hasScript)('the progress line shows used/limit when weights are in play', async () => {
    await hold('ttyw', 4, 3)
    const cmd = `${JSON.stringify(node)} ${JSON.stringify(CLI)} run --key ttyw --limit 4 --weight 2 --root ${JSON.stringify(root)} -- ${JSON.stringify(node)} -e ""`
    const p = new Proc('script', ['-qfec', cmd, '/dev/null'])
    await p.waitStdout(/\r\x1b\[2Kwaiting for room for weight 2 in "ttyw" \(3\/4 used by 1 holder, \d+(ms|s)\)…/)
    p.proc.stdin?.write('\x03')
    expect((await p.closed).code).toBe(130)
  })
})
