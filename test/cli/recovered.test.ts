// Issue 10 items 5 and 7: PROCLEASE_RECOVERED, the takeover notice, reaches the command under
// `run` as JSON — once: the next grant of the key sees it unset again.
//
// Needs the file store's takeover notices (S12): until they land, lease.recovered is always
// null on the file store and these tests fail.
import { describe, expect, it } from 'vitest'
import { DIST_INDEX, Proc, runCli, setupCliTests } from './harness.js'
import { PRINT_ENV, envOf } from './hold-env.js'

let root = ''
setupCliTests((r) => {
  root = r
})

/** A process that takes a slot of `key` (with metadata) and is then SIGKILLed: a crashed holder. */
async function crashedHolder(key: string, limit: number, weight: number): Promise<{ pid: number; fence: number }> {
  const script = `import(${JSON.stringify(DIST_INDEX)}).then(async (m) => {
    const l = await m.acquireLease({ key: ${JSON.stringify(key)}, limit: ${limit}, weight: ${weight}, lockRoot: ${JSON.stringify(root)}, metadata: { job: 'j-1' } });
    console.log('held ' + process.pid + ' ' + l.fence);
    setInterval(() => {}, 1 << 30);
  })`
  const p = new Proc(process.execPath, ['-e', script])
  const [, pid, fence] = (await p.waitLine(/^held \d+ \d+$/)).split(' ')
  p.proc.kill('SIGKILL')
  await p.closed
  return { pid: Number(pid), fence: Number(fence) }
}

describe('PROCLEASE_RECOVERED', () => {
  it.each([[[]], [['--no-inherit']]])('is the crashed holder’s record for exactly one later command (%j)', async (extra) => {
    const dead = await crashedHolder('crash', 2, 2)
    const first = await runCli(['run', '--key', 'crash', '--limit', '2', '--root', root, ...extra, '--', 'sh', '-c', PRINT_ENV])
    expect(first.code, first.stderr).toBe(0)
    const recovered = envOf(first.stdout).RECOVERED
    expect(recovered, first.stdout).toBeDefined()
    expect(JSON.parse(recovered as string)).toMatchObject({ slot: 0, pid: dead.pid, fence: dead.fence, weight: 2, metadata: { job: 'j-1' } })
    const second = await runCli(['run', '--key', 'crash', '--limit', '2', '--root', root, ...extra, '--', 'sh', '-c', PRINT_ENV])
    expect(second.code, second.stderr).toBe(0)
    expect(envOf(second.stdout)).toMatchObject({ KEY: 'crash', RECOVERED: undefined })
  })

  it('reaches the next command even when `reclaim` removed the crashed holder', async () => {
    const dead = await crashedHolder('swept', 1, 1)
    const swept = await runCli(['reclaim', '--key', 'swept', '--root', root])
    expect(swept.code, swept.stderr).toBe(0)
    expect(swept.stdout).toMatch(/reclaimed slot 0/)
    const r = await runCli(['run', '--key', 'swept', '--root', root, '--', 'sh', '-c', PRINT_ENV])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(envOf(r.stdout).RECOVERED ?? 'null')).toMatchObject({ pid: dead.pid, fence: dead.fence })
  })
})
