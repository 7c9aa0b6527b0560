// Issue 10 item 7, from flock(1): `-c 'shell command'`, `--fd N` (the descriptor number the
// command gets for the slot's lock) and `--no-inherit` (the wrapper keeps the hold; the
// command's own children never hold the slot).
import { spawnSync } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { tryAcquireLease } from '../../lib/index.js'
import { cli, runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

/** Prints how many of the shell's descriptors name a slot record file. */
const SLOT_FDS = 'n=0; for f in /proc/$$/fd/*; do case "$(readlink "$f")" in */slot-*) n=$((n+1));; esac; done; echo "slot fds: $n"'

const hasFlock = spawnSync('flock', ['--version']).status === 0

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function statusKey(key: string, verbose = false): Promise<{ active: number; holders: Array<Record<string, unknown>> }> {
  const r = await runCli(['status', '--root', root, '--json', '--key', key, ...(verbose ? ['--verbose'] : [])])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout).keys[0]
}

describe('-c', () => {
  it('runs a shell command line under /bin/sh, holding the slot, with its exit status', async () => {
    const r = await runCli(['run', '--key', 'c', '--root', root, '-c', 'echo "$0: $((6 * 7))"; exit 3'])
    expect(r).toMatchObject({ code: 3, stdout: '/bin/sh: 42\n', stderr: '' })
    const long = await runCli(['run', '--key', 'c', '--root', root, '--command', SLOT_FDS])
    expect(long).toMatchObject({ code: 0, stdout: 'slot fds: 1\n' })
  })

  it('holds the slot while the shell command runs', async () => {
    const p = cli(['run', '--key', 'c2', '--root', root, '-c', 'echo started; read line || :'])
    expect(await p.nextLine()).toBe('started')
    expect(await statusKey('c2')).toMatchObject({ active: 1 })
    expect(await tryAcquireLease({ key: 'c2', limit: 1, lockRoot: root })).toBeNull()
    p.proc.stdin?.end()
    expect((await p.closed).code).toBe(0)
    expect(await statusKey('c2')).toMatchObject({ active: 0 })
  })
})

describe('--fd N', () => {
  it('gives the command the slot’s lock as fd N instead of 3', async () => {
    const p = cli(['run', '--key', 'fd5', '--root', root, '--fd', '5', '-c', 'readlink /proc/$$/fd/5; test -e /proc/$$/fd/3 || echo "no fd 3"; read line || :'])
    const target = await p.nextLine()
    expect(await p.nextLine()).toBe('no fd 3')
    // fd 5 names the slot's record file, in a key directory under the root.
    expect(target.startsWith(`${realpathSync(root)}/`)).toBe(true)
    expect(target).toMatch(/\/slot-0$/)
    expect(await statusKey('fd5', true)).toMatchObject({ active: 1, holders: [{ slot: 0, state: 'alive' }] })
    p.proc.stdin?.end()
    expect((await p.closed).code).toBe(0)
  })

  it.skipIf(!hasFlock)('fd N carries the slot’s kernel lock: a new open of the same file cannot lock it', async () => {
    // flock -n on a fresh open of /proc/self/fd/5 fails (exit 1) while the slot's lock is held.
    const r = await runCli(['run', '--key', 'fd5b', '--root', root, '--fd', '5', '-c', 'flock -n -s /proc/$$/fd/5 true; echo "fresh=$?"; flock -n 5 && echo "own=ok"'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('fresh=1\nown=ok\n')
  })

  it('the slot is held by whoever keeps fd N, as with fd 3', async () => {
    const r = await runCli(['run', '--key', 'fd7', '--root', root, '--fd', '7', '-c', 'sleep 1000 >/dev/null 2>&1 </dev/null & echo "bg $!"'])
    const bgPid = Number(/^bg (\d+)/m.exec(r.stdout)?.[1])
    try {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toMatch(/stays held by processes the command left running \(they inherited fd 7\)/)
      expect(await statusKey('fd7')).toMatchObject({ active: 1 })
    } finally {
      if (bgPid > 0) process.kill(bgPid, 'SIGKILL')
    }
  })
})

describe('--no-inherit', () => {
  it('passes no descriptor; the wrapper is the recorded holder while the command runs', async () => {
    const p = cli(['run', '--key', 'ni', '--root', root, '--no-inherit', '-c', `${SLOT_FDS}; read line || :`])
    expect(await p.nextLine()).toBe('slot fds: 0')
    const st = await statusKey('ni', true)
    expect(st).toMatchObject({ active: 1, holders: [{ slot: 0, state: 'alive', pid: p.pid }] })
    p.proc.stdin?.end()
    expect(await p.closed).toMatchObject({ code: 0, stderr: '' })
    expect(await statusKey('ni')).toMatchObject({ active: 0 })
  })

  it('a grandchild that outlives the command does not keep the slot', async () => {
    const r = await runCli(['run', '--key', 'gc', '--root', root, '--no-inherit', '-c', 'sleep 1000 >/dev/null 2>&1 </dev/null & echo "bg $!"'])
    const bgPid = Number(/^bg (\d+)/m.exec(r.stdout)?.[1])
    expect(bgPid).toBeGreaterThan(0)
    try {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
      // The command has exited, its child still runs, and the slot is free.
      expect(alive(bgPid)).toBe(true)
      expect(await statusKey('gc')).toMatchObject({ active: 0, holders: [] })
      const lease = await tryAcquireLease({ key: 'gc', limit: 1, lockRoot: root })
      expect(lease).not.toBeNull()
      if (lease) leases.push(lease)
      expect(alive(bgPid)).toBe(true)
    } finally {
      process.kill(bgPid, 'SIGKILL')
    }
  })

  it('the slot frees when the wrapper is killed, even while the command runs (the wrapper is the holder)', async () => {
    const p = cli(['run', '--key', 'nik', '--root', root, '--no-inherit', '-c', 'echo "started $$"; exec sleep 1000'])
    const commandPid = Number((await p.waitLine(/^started \d+$/)).split(' ')[1])
    p.commandPid = commandPid
    p.proc.kill('SIGKILL')
    await p.exited()
    try {
      expect(alive(commandPid)).toBe(true)
      // A waiting acquire is the synchronization: the wrapper's lock closes as it dies.
      const { acquireLease } = await import('../../lib/index.js')
      leases.push(await acquireLease({ key: 'nik', limit: 1, lockRoot: root, waitMs: 30_000 }))
    } finally {
      process.kill(commandPid, 'SIGKILL')
    }
  })
})
