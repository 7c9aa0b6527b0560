// Issue 8: status and reclaim as an operator uses them — they create nothing (defect 9), never
// wait without bound behind a frozen key (defect 7), list every key directory (defect 15), show
// stray files as such (defect 17) and say when a slot's lock was inherited by another process.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { keyDirName } from '../../lib/lease/root.js'
import { runCli, setupCliTests } from './harness.js'

let root = ''
setupCliTests((r) => {
  root = r
})

const kids: number[] = []
function killLater(pid: number): void {
  kids.push(pid)
}
async function killAll(): Promise<void> {
  for (const pid of kids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
}

describe('status and reclaim', () => {
  it('create nothing for a missing root, not even a parent', async () => {
    const missing = join(root, 'typo', 'a', 'b', 'c')
    const st = await runCli(['status', '--root', missing])
    expect(st.code).toBe(0)
    expect(st.stdout).toContain('no keys under')
    const one = await runCli(['status', '--key', 'k', '--root', missing, '--json'])
    expect(JSON.parse(one.stdout)).toMatchObject({ keys: [{ key: 'k', active: 0 }] })
    const dry = await runCli(['reclaim', '--key', 'k', '--root', missing, '--dry-run'])
    expect(dry.code).toBe(0)
    expect(fs.existsSync(root)).toBe(false)
  })

  it('report a frozen key with exit 70 and a clear message instead of waiting forever', async () => {
    expect((await runCli(['run', '--key', 'frozen', '--root', root, '--', 'true'])).code).toBe(0)
    const gate = join(root, keyDirName('frozen'), 'gate')
    const holder = spawn('sh', ['-c', 'exec 9<>"$0" && flock -x 9 && echo locked && exec sleep 600', gate], { stdio: ['ignore', 'pipe', 'inherit'] })
    killLater(holder.pid!)
    try {
      await new Promise<void>((resolve) => createInterface({ input: holder.stdout! }).once('line', () => resolve()))
      for (const args of [
        ['status', '--key', 'frozen'],
        ['status'],
        ['reclaim', '--key', 'frozen'],
      ]) {
        const res = await runCli([...args, '--root', root, '--wait', '0.3'])
        expect(res.code).toBe(70)
        expect(res.stderr).toMatch(/frozen.*another process.*\(key_frozen\)/)
      }
    } finally {
      await killAll()
    }
  })

  it('list a key directory whose key file is missing, by its directory name, and stray files', async () => {
    expect((await runCli(['run', '--key', 'kept', '--root', root, '--', 'true'])).code).toBe(0)
    const dir = join(root, keyDirName('kept'))
    fs.rmSync(join(dir, 'key'))
    fs.writeFileSync(join(dir, '.DS_Store'), 'x')
    const res = await runCli(['status', '--root', root, '--json'])
    expect(JSON.parse(res.stdout)).toEqual({
      version: 1,
      keys: [{ key: null, dir: keyDirName('kept'), limit: null, active: 0, used: 0, waiting: 0, holders: [], stray: ['.DS_Store'] }],
    })
    const text = await runCli(['status', '--root', root])
    expect(text.stdout).toContain(`directory ${keyDirName('kept')} (its key file is missing)`)
    expect(text.stdout).toMatch(/stray +\.DS_Store \(not slot records: never counted\)/)
  })

  it('say when the slot lock is held by a process that inherited it', async () => {
    const res = await runCli(['run', '--key', 'inh', '--root', root, '--', 'sh', '-c', 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!'])
    const sleeper = Number(res.stdout.trim())
    killLater(sleeper)
    try {
      expect(res.stderr).toContain('stays held by processes the command left running')
      const st = await runCli(['status', '--key', 'inh', '--root', root, '--verbose', '--json'])
      expect(JSON.parse(st.stdout).keys[0]).toMatchObject({ active: 1, holders: [{ state: 'alive', lockInherited: true }] })
      const text = await runCli(['status', '--key', 'inh', '--root', root, '--verbose'])
      expect(text.stdout).toContain('inherited')
    } finally {
      await killAll()
    }
  })
})
