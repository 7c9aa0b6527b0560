// `proclease status` and `proclease reclaim`: counts while holders run, and the --json schemas.
import { describe, expect, it } from 'vitest'
import { type Lease, tryAcquireLease } from '../../lib/index.js'
import { DIST_INDEX, Proc, cli, heldScript, runCli, setupCliTests } from './harness.js'

let root = ''
const leases = setupCliTests((r) => {
  root = r
})

const node = process.execPath

async function json(args: string[]): Promise<any> {
  const r = await runCli(args)
  expect(r.code, r.stderr).toBe(0)
  expect(r.stderr).toBe('')
  return JSON.parse(r.stdout)
}

async function hold(key: string, limit: number, metadata?: Record<string, string | number | boolean>): Promise<Lease> {
  const lease = await tryAcquireLease({ key, limit, lockRoot: root, metadata })
  if (!lease) throw new Error('test could not take a slot')
  leases.push(lease)
  return lease
}

/** A process that takes a slot through the built package, then is SIGKILLed: a crashed holder. */
async function crashedHolder(key: string, limit: number): Promise<number> {
  const script = `import(${JSON.stringify(DIST_INDEX)}).then(async (m) => {
    await m.acquireLease({ key: ${JSON.stringify(key)}, limit: ${limit}, lockRoot: ${JSON.stringify(root)} });
    console.log('held');
    setInterval(() => {}, 1 << 30);
  })`
  const p = new Proc(node, ['-e', script])
  await p.waitLine(/^held$/)
  p.proc.kill('SIGKILL')
  // 'exit' comes after the kernel reaped it: its descriptors, and so its locks, are gone.
  await p.exited()
  return p.pid
}

const VERBOSE_HOLDER_KEYS = ['acquiredAt', 'ageMs', 'argv0', 'fence', 'hostname', 'limit', 'metadata', 'pid', 'slot', 'starttime', 'state', 'weight']

describe('status', () => {
  it('reports an empty lock root', async () => {
    expect(await json(['status', '--root', root, '--json'])).toEqual({ version: 1, keys: [] })
    const r = await runCli(['status', '--root', root])
    expect(r).toMatchObject({ code: 0, stdout: `no keys under ${root}\n` })
    // A named key that was never used: no holders, limit unknown.
    expect(await json(['status', '--root', root, '--key', 'never', '--json'])).toEqual({
      version: 1,
      keys: [{ key: 'never', limit: null, active: 0, used: 0, waiting: 0, holders: [] }],
    })
  })

  it('counts holders while `run` commands hold slots, and lists every key', async () => {
    const a = cli(['run', '--key', 'build', '--limit', '3', '--root', root, '--', node, '-e', heldScript()])
    const b = cli(['run', '--key', 'build', '--limit', '3', '--root', root, '--', node, '-e', heldScript()])
    const c = cli(['run', '--key', 'deploy', '--root', root, '--', node, '-e', heldScript()])
    const pids = await Promise.all([a, b, c].map(async (p) => Number((await p.waitLine(/^started /)).split(' ')[1])))

    const all = await json(['status', '--root', root, '--json'])
    expect(all.version).toBe(1)
    const byKey = Object.fromEntries(all.keys.map((k: { key: string }) => [k.key, k]))
    expect(Object.keys(byKey).sort()).toEqual(['build', 'deploy'])
    expect(byKey.build).toEqual({ key: 'build', limit: 3, active: 2, used: 2, waiting: 0, holders: [{ slot: 0, state: 'alive', weight: 1 }, { slot: 1, state: 'alive', weight: 1 }] })
    expect(byKey.deploy).toEqual({ key: 'deploy', limit: 1, active: 1, used: 1, waiting: 0, holders: [{ slot: 0, state: 'alive', weight: 1 }] })

    const text = await runCli(['status', '--root', root, '--key', 'build'])
    expect(text.stdout).toBe('"build"  2/3 held\n  slot 0   alive\n  slot 1   alive\n')

    // Verbose names the commands (not the wrappers), with a stable set of fields.
    const verbose = await json(['status', '--root', root, '--key', 'build', '--json', '--verbose'])
    const holders = verbose.keys[0].holders
    expect(holders.map((h: { pid: number }) => h.pid).sort()).toEqual(pids.slice(0, 2).sort())
    for (const h of holders) {
      expect(Object.keys(h).sort()).toEqual(VERBOSE_HOLDER_KEYS)
      expect(h).toMatchObject({ state: 'alive', limit: 3, metadata: {} })
      expect(h.starttime).toMatch(/^[0-9]+$/)
      expect(typeof h.argv0).toBe('string')
      expect(Number.isSafeInteger(h.fence)).toBe(true)
      expect(Number.isNaN(Date.parse(h.acquiredAt))).toBe(false)
      expect(h.ageMs).toBeGreaterThanOrEqual(0)
    }
    expect(holders[0].fence).not.toBe(holders[1].fence)
    const vtext = await runCli(['status', '--root', root, '--key', 'build', '--verbose'])
    expect(vtext.stdout).toMatch(new RegExp(`slot 0 +alive +pid (${pids[0]}|${pids[1]}) \\(.*\\) +host .* +age \\S+ +fence \\d+`))

    for (const p of [a, b, c]) p.proc.stdin?.end()
    for (const p of [a, b, c]) expect((await p.closed).code).toBe(0)
    const after = await json(['status', '--root', root, '--json'])
    expect(after.keys.map((k: { active: number }) => k.active)).toEqual([0, 0])
  })

  it('shows metadata only verbosely', async () => {
    await hold('meta', 2, { job: 'nightly', attempt: 2, dry: false })
    const plain = await json(['status', '--root', root, '--key', 'meta', '--json'])
    expect(plain.keys[0].holders).toEqual([{ slot: 0, state: 'alive', weight: 1 }])
    const verbose = await json(['status', '--root', root, '--key', 'meta', '--json', '-v'])
    expect(verbose.keys[0].holders[0]).toMatchObject({ pid: process.pid, metadata: { job: 'nightly', attempt: 2, dry: false } })
    const text = await runCli(['status', '--root', root, '--key', 'meta', '-v'])
    expect(text.stdout).toContain('metadata {"job":"nightly","attempt":2,"dry":false}')
  })

  it('reports a crashed holder as dead, not active', async () => {
    await crashedHolder('crash', 2)
    const st = await json(['status', '--root', root, '--key', 'crash', '--json'])
    expect(st.keys[0]).toEqual({ key: 'crash', limit: 2, active: 0, used: 0, waiting: 0, holders: [{ slot: 0, state: 'dead', weight: 1 }] })
  })

  it('fails with 70 and the error code on an unsafe lock root', async () => {
    const r = await runCli(['status', '--root', '/dev/null'])
    expect(r.code, r.stderr).toBe(70)
    expect(r.stderr).toMatch(/^proclease: .*\(lock_root_unsafe\)\n$/)
  })
})

describe('reclaim', () => {
  it('reports, then removes, the slots of holders proven gone; never a live one', async () => {
    await hold('r', 3)
    const deadPid = await crashedHolder('r', 3)

    const dry = await json(['reclaim', '--key', 'r', '--root', root, '--dry-run', '--json'])
    expect(dry).toEqual({
      version: 1,
      key: 'r',
      dryRun: true,
      reclaimed: [{ slot: 1 }],
      remaining: { key: 'r', limit: 3, active: 1, used: 1, waiting: 0, holders: [{ slot: 0, state: 'alive', weight: 1 }, { slot: 1, state: 'dead', weight: 1 }] },
    })
    const dryText = await runCli(['reclaim', '--key', 'r', '--root', root, '--dry-run', '--verbose'])
    expect(dryText.stdout).toContain(`"r": would reclaim slot 1 (pid ${deadPid})`)

    const done = await json(['reclaim', '--key', 'r', '--root', root, '--json', '--verbose'])
    expect(done).toMatchObject({ version: 1, key: 'r', dryRun: false, reclaimed: [{ slot: 1, pid: deadPid }] })
    expect(Object.keys(done).sort()).toEqual(['dryRun', 'key', 'reclaimed', 'remaining', 'version'])
    expect(done.remaining).toMatchObject({ key: 'r', limit: 3, active: 1, holders: [{ slot: 0, state: 'alive', pid: process.pid }] })

    const again = await runCli(['reclaim', '--key', 'r', '--root', root])
    expect(again.stdout).toBe('"r": nothing to reclaim\n"r"  1/3 held\n  slot 0   alive\n')
  })
})
