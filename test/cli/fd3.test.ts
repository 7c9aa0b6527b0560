// Issue 8 defect 3 (CLI side): a command under `run` that writes to fd 3 cannot corrupt its slot
// record; the slot is released when it ends, and nothing warns about a removed lock root.
import { describe, expect, it } from 'vitest'
import { runCli, setupCliTests } from './harness.js'

let root = ''
setupCliTests((r) => {
  root = r
})

describe('run: the command’s fd 3', () => {
  it('cannot be written, and the slot is free again after the command', async () => {
    const res = await runCli(['run', '--key', 'fd3', '--root', root, '--', 'sh', '-c', 'echo hi >&3 2>/dev/null; echo "rc=$?"'])
    expect(res.code).toBe(0)
    expect(res.stdout.trim()).not.toBe('rc=0')
    expect(res.stderr).toBe('')
    const st = await runCli(['status', '--key', 'fd3', '--root', root, '--json'])
    expect(JSON.parse(st.stdout)).toMatchObject({ keys: [{ key: 'fd3', active: 0 }] })
    const again = await runCli(['run', '--key', 'fd3', '--root', root, '--wait', '0', '--', 'true'])
    expect(again.code).toBe(0)
  })
})
