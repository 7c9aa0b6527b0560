// `proclease run`: exit statuses, busy exit, the hold belonging to the command, signal forwarding.
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { type Lease, acquireLease, tryAcquireLease } from '../../lib/index.js'
import { CLI, Proc, cli, heldScript, runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

const node = process.execPath

async function hold(key: string, limit: number): Promise<Lease> {
  const lease = await tryAcquireLease({ key, limit, lockRoot: root })
  if (!lease) throw new Error('test could not take a slot')
  leases.push(lease)
  return lease
}

async function statusJson(key?: string, verbose = false): Promise<{ version: number; keys: Array<{ key: string; limit: number | null; active: number; holders: Array<Record<string, unknown>> }> }> {
  const args = ['status', '--root', root, '--json', ...(key ? ['--key', key] : []), ...(verbose ? ['--verbose'] : [])]
  const r = await runCli(args)
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

describe('exit status', () => {
  it('is the command’s own exit code', async () => {
    const r = await runCli(['run', '--key', 'k', '--root', root, '--', node, '-e', 'process.exit(3)'])
    expect(r).toMatchObject({ code: 3, signal: null })
    const ok = await runCli(['run', '--key', 'k', '--root', root, '--', node, '-e', 'process.stdout.write("hi")'])
    expect(ok).toMatchObject({ code: 0, stdout: 'hi', stderr: '' })
  })

  it('is 128 + the signal number when the command dies by a signal', async () => {
    const term = await runCli(['run', '--key', 'k', '--root', root, '--', node, '-e', 'process.kill(process.pid, "SIGTERM")'])
    expect(term).toMatchObject({ code: 143, signal: null })
    const kill = await runCli(['run', '--key', 'k', '--root', root, '--', node, '-e', 'process.kill(process.pid, "SIGKILL")'])
    expect(kill).toMatchObject({ code: 137, signal: null })
  })

  it('is 127 for a command that does not exist, 126 for one that cannot be executed', async () => {
    const missing = await runCli(['run', '--key', 'k', '--root', root, '--', 'proclease-no-such-command-here'])
    expect(missing.code, missing.stderr).toBe(127)
    expect(missing.stderr).toMatch(/cannot run .*ENOENT/)
    const dir = await runCli(['run', '--key', 'k', '--root', root, '--', root])
    expect(dir.code, dir.stderr).toBe(126)
    // Either way the slot was released.
    expect((await statusJson('k')).keys[0]).toMatchObject({ active: 0, holders: [] })
  })

  it('releases the slot when the command ends', async () => {
    await runCli(['run', '--key', 'k', '--root', root, '--', node, '-e', ''])
    expect((await statusJson('k')).keys[0]).toMatchObject({ key: 'k', active: 0, holders: [] })
    const lease = await hold('k', 1)
    expect(lease.slot).toBe(0)
  })
})

describe('busy', () => {
  it('exits 75 when no slot frees in time, or the --busy-exit code; never runs the command', async () => {
    await hold('busy', 1)
    const r = await runCli(['run', '--key', 'busy', '--root', root, '--wait', '0', '--', node, '-e', 'console.log("ran")'])
    expect(r.code, r.stderr).toBe(75)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/no slot of "busy" freed within 0s \(1\/1 held\) \(lease_busy\)/)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)

    const custom = await runCli(['run', '--key', 'busy', '--root', root, '--wait', '0.05', '--busy-exit', '9', '--', node, '-e', 'console.log("ran")'])
    expect(custom.code, custom.stderr).toBe(9)
    expect(custom.stdout).toBe('')

    const quiet = await runCli(['run', '--key', 'busy', '--root', root, '--wait', '0', '--quiet', '--', node, '-e', ''])
    expect(quiet).toMatchObject({ code: 75, stderr: '' })
  })

  it('waits for a slot by default and runs once the holder releases', async () => {
    const lease = await hold('wait', 1)
    const p = cli(['run', '--key', 'wait', '--root', root, '--', node, '-e', 'console.log("ran")'])
    p.proc.stdin?.end()
    // The wrapper is waiting; the slot is still ours. Releasing lets it through.
    expect((await statusJson('wait')).keys[0]?.active).toBe(1)
    await lease.release()
    expect(await p.nextLine()).toBe('ran')
    expect((await p.closed).code).toBe(0)
  })

  it('counts the limit: holders up to N run side by side, the next is busy', async () => {
    const a = cli(['run', '--key', 'pool', '--limit', '2', '--root', root, '--', node, '-e', heldScript()])
    const b = cli(['run', '--key', 'pool', '--limit', '2', '--root', root, '--', node, '-e', heldScript()])
    await a.waitLine(/^started /)
    await b.waitLine(/^started /)
    const st = (await statusJson('pool')).keys[0]
    expect(st).toMatchObject({ key: 'pool', limit: 2, active: 2 })
    expect(st?.holders.map((h) => h.slot).sort()).toEqual([0, 1])
    const c = await runCli(['run', '--key', 'pool', '--limit', '2', '--root', root, '--wait', '0', '--', node, '-e', ''])
    expect(c.code, c.stderr).toBe(75)
    a.proc.stdin?.end()
    b.proc.stdin?.end()
    expect((await a.closed).code).toBe(0)
    expect((await b.closed).code).toBe(0)
  })
})

describe('the hold belongs to the command', () => {
  it('hands the command the slot lock as fd 3 and names it in the record', async () => {
    const p = cli(['run', '--key', 'fd', '--root', root, '--', node, '-e', heldScript()])
    const line = await p.waitLine(/^started /)
    const childPid = Number(line.split(' ')[1])
    const st = (await statusJson('fd', true)).keys[0]
    expect(st?.holders).toHaveLength(1)
    expect(st?.holders[0]).toMatchObject({ slot: 0, state: 'alive', pid: childPid })
    expect(childPid).not.toBe(p.pid)
    p.proc.stdin?.end()
    expect((await p.closed).code).toBe(0)
  })

  it('keeps the slot after SIGKILL of the wrapper until the command ends, then frees it', async () => {
    const p = cli(['run', '--key', 'kill', '--root', root, '--', node, '-e', heldScript('', 'signal')])
    const commandPid = Number((await p.waitLine(/^started /)).split(' ')[1])
    p.proc.kill('SIGKILL')
    expect(await p.exited()).toEqual({ code: null, signal: 'SIGKILL' })

    // The command still runs and still holds the slot: kernel lock (fd 3) and identity agree.
    const st = (await statusJson('kill')).keys[0]
    expect(st).toMatchObject({ active: 1, holders: [{ slot: 0, state: 'alive' }] })
    expect(await tryAcquireLease({ key: 'kill', limit: 1, lockRoot: root })).toBeNull()
    const busy = await runCli(['run', '--key', 'kill', '--root', root, '--wait', '0', '--', node, '-e', ''])
    expect(busy.code, busy.stderr).toBe(75)

    // End the command. It still holds our stdout pipe, which closes when it exits. (Its pid is
    // still its own: it cannot have exited and been reaped while the pipe is open.)
    expect(p.isClosed).toBe(false)
    process.kill(commandPid, 'SIGTERM')
    await p.closed
    // Our pipe closes a moment before the exiting command's fd 3 does: a waiting acquire (not a
    // try) is the synchronization. It reclaims the slot once the kernel lock is free.
    const lease = await acquireLease({ key: 'kill', limit: 1, lockRoot: root, waitMs: 30_000 })
    leases.push(lease)
    expect(lease.slot).toBe(0)
    expect((await statusJson('kill')).keys[0]).toMatchObject({ active: 1, holders: [{ slot: 0, state: 'alive' }] })
  })

  it('a command that holds the slot by itself outlives a wrapper killed before the hand-over', async () => {
    // Even without waiting for the record to name the command, the kernel lock it inherited
    // keeps the slot held: SIGKILL the wrapper as soon as the command prints.
    const p = cli(['run', '--key', 'early', '--root', root, '--', node, '-e', 'console.log("up " + process.pid); setInterval(() => {}, 1 << 30)'])
    const commandPid = Number((await p.waitLine(/^up /)).split(' ')[1])
    p.proc.kill('SIGKILL')
    await p.exited()
    expect(await tryAcquireLease({ key: 'early', limit: 1, lockRoot: root })).toBeNull()
    expect(p.isClosed).toBe(false)
    process.kill(commandPid, 'SIGTERM')
    await p.closed
    leases.push(await acquireLease({ key: 'early', limit: 1, lockRoot: root, waitMs: 30_000 }))
  })
})

describe('processes the command leaves running', () => {
  it('keep the slot held while they hold fd 3, as with flock(1); it frees when they end', async () => {
    // The command starts a background process that keeps fd 3 and exits at once.
    const bg = `const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: ['ignore', 'ignore', 'ignore', 3], detached: true });
      console.log('bg ' + c.pid); c.unref()`
    const r = await runCli(['run', '--key', 'bg', '--root', root, '--', node, '-e', bg])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/stays held by processes the command left running/)
    const bgPid = Number(/^bg (\d+)/m.exec(r.stdout)?.[1])
    expect(bgPid).toBeGreaterThan(0)
    try {
      expect((await statusJson('bg')).keys[0]).toMatchObject({ active: 1 })
      expect(await tryAcquireLease({ key: 'bg', limit: 1, lockRoot: root })).toBeNull()
    } finally {
      process.kill(bgPid, 'SIGKILL')
    }
    // Its lock closes with it: a waiting acquire reclaims the slot (kernel free, holder dead).
    leases.push(await acquireLease({ key: 'bg', limit: 1, lockRoot: root, waitMs: 30_000 }))
  })

  it('do not hold the slot when they closed fd 3', async () => {
    const bg = `const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore', detached: true });
      console.log('bg ' + c.pid); c.unref()`
    const r = await runCli(['run', '--key', 'nobg', '--root', root, '--', node, '-e', bg])
    const bgPid = Number(/^bg (\d+)/m.exec(r.stdout)?.[1])
    try {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
      expect((await statusJson('nobg')).keys[0]).toMatchObject({ active: 0 })
    } finally {
      if (bgPid > 0) process.kill(bgPid, 'SIGKILL')
    }
  })
})

describe('a wiped lock root', () => {
  it('runs the command to its end and warns that the slot was lost', async () => {
    const p = cli(['run', '--key', 'wiped', '--root', root, '--', node, '-e', heldScript()])
    await p.waitLine(/^started /)
    rmSync(root, { recursive: true, force: true })
    p.proc.stdin?.end()
    const r = await p.closed
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/^proclease: warning: the slot of "wiped" was no longer held when the command ended/)
  })
})

describe('signals', () => {
  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('forwards %s to the command', async (signal) => {
    const body = `process.on('${signal}', () => { console.log('got ${signal}'); process.exit(0) });`
    const p = cli(['run', '--key', 'sig', '--root', root, '--', node, '-e', heldScript(body)])
    await p.waitLine(/^started /)
    p.proc.kill(signal)
    expect(await p.nextLine()).toBe(`got ${signal}`)
    expect(await p.closed).toMatchObject({ code: 0, signal: null })
    // The wrapper released on its way out.
    expect((await statusJson('sig')).keys[0]?.active).toBe(0)
  })

  it('exits 128+N when the command does not survive the forwarded signal', async () => {
    const p = cli(['run', '--key', 'sig2', '--root', root, '--', node, '-e', heldScript()])
    await p.waitLine(/^started /)
    p.proc.kill('SIGTERM')
    expect(await p.closed).toMatchObject({ code: 143, signal: null })
  })
})

describe('on a terminal', () => {
  // script(1) gives the wrapper a pseudo-terminal; Ctrl-C goes to the foreground group.
  const hasScript = process.platform === 'linux' && spawnSync('script', ['--version']).status === 0

  it.skipIf(!hasScript)('shows one updating progress line while waiting, and Ctrl-C stops the wait with 130', async () => {
    await hold('tty', 1)
    const cmd = `${JSON.stringify(node)} ${JSON.stringify(CLI)} run --key tty --root ${JSON.stringify(root)} -- ${JSON.stringify(node)} -e ""`
    const p = new Proc('script', ['-qfec', cmd, '/dev/null'])
    await p.waitStdout(/\r\x1b\[2Kwaiting for a slot of "tty" \(1\/1 held, \d+(ms|s)\)…/)
    p.proc.stdin?.write('\x03')
    const r = await p.closed
    expect(r.code, r.stderr).toBe(130)
    // Nothing ran, and our slot is still the only one.
    expect((await statusJson('tty')).keys[0]?.active).toBe(1)
  })

  it.skipIf(!hasScript)('is silent with --quiet', async () => {
    await hold('ttyq', 1)
    const cmd = `${JSON.stringify(node)} ${JSON.stringify(CLI)} run --quiet --key ttyq --wait 0.2 --root ${JSON.stringify(root)} -- ${JSON.stringify(node)} -e ""`
    const r = await new Proc('script', ['-qfec', cmd, '/dev/null']).closed
    expect(r.code, r.stderr).toBe(75)
    expect(r.stdout).not.toMatch(/waiting/)
  })
})
