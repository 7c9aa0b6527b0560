// Issue 10 item 4 (CLI): `status` shows how many are waiting for a key, in text and JSON.
//
// Needs the file store's queue (S11): until it lands, `waiting` is always 0 on the file store and
// this test fails.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { tryAcquireLease } from '../../lib/index.js'
import { CLI, Proc, runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

const node = process.execPath
// script(1) gives the waiter a terminal: its progress line appears after its first busy answer,
// which is when a fair waiter takes its place in the queue.
const hasScript = process.platform === 'linux' && spawnSync('script', ['--version']).status === 0

describe('status shows waiters', () => {
  it.skipIf(!hasScript)('counts a queued `run` as waiting until it is served', async () => {
    const lease = await tryAcquireLease({ key: 'q', limit: 2, weight: 2, lockRoot: root })
    if (!lease) throw new Error('test could not take a slot')
    leases.push(lease)
    const cmd = `${JSON.stringify(node)} ${JSON.stringify(CLI)} run --key q --limit 2 --root ${JSON.stringify(root)} -- ${JSON.stringify(node)} -e ""`
    const waiter = new Proc('script', ['-qfec', cmd, '/dev/null'])
    await waiter.waitStdout(/waiting for a slot of "q"/)

    const json = await runCli(['status', '--root', root, '--json', '--key', 'q'])
    expect(JSON.parse(json.stdout).keys[0]).toMatchObject({ key: 'q', active: 1, used: 2, waiting: 1 })
    const text = await runCli(['status', '--root', root, '--key', 'q'])
    expect(text.stdout.split('\n')[0]).toBe('"q"  1/2 held, 2/2 used, 1 waiting')

    await lease.release()
    expect((await waiter.closed).code).toBe(0)
    const after = await runCli(['status', '--root', root, '--json', '--key', 'q'])
    expect(JSON.parse(after.stdout).keys[0]).toMatchObject({ active: 0, used: 0, waiting: 0 })
  })
})
