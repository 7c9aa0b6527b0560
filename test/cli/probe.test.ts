// `proclease probe`: identities as the kernel reports them, errors per pid with their codes.
import { afterAll, describe, expect, it } from 'vitest'
import { capturePidInfo, currentBootId, hostIdentity } from '../../lib/index.js'
import { Proc, cli, finish, runCli } from './harness.js'

afterAll(finish)

/** A pid that belonged to a process that has exited and been reaped. */
async function reapedPid(): Promise<number> {
  const p = new Proc(process.execPath, ['-e', ''])
  await p.closed
  return p.pid
}

describe('probe', () => {
  it('describes itself and this host by default (--json schema version 1)', async () => {
    const p = cli(['probe', '--json'])
    p.proc.stdin?.end()
    const r = await p.closed
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(Object.keys(out).sort()).toEqual(['host', 'processes', 'version'])
    expect(out.version).toBe(1)
    const host = hostIdentity()
    expect(out.host).toEqual({ ...host, bootId: currentBootId(), bootIdKnown: true, platform: process.platform })
    expect(out.processes).toHaveLength(1)
    const me = out.processes[0]
    expect(me).toMatchObject({ arg: String(p.pid), pid: p.pid, ok: true })
    expect(me.starttime).toMatch(/^[0-9]+$/)
    expect(Object.keys(me).sort()).toEqual(expect.arrayContaining(['arg', 'argv0', 'ok', 'pid', 'starttime']))
  })

  it('reports each pid, with the error code of those it cannot probe, and exits 1', async () => {
    const gone = await reapedPid()
    const r = await runCli(['probe', String(process.pid), String(gone), '0', 'abc', '--json'])
    expect(r.code, r.stderr).toBe(1)
    const out = JSON.parse(r.stdout)
    const [self, dead, zero, junk] = out.processes
    expect(self).toMatchObject({ arg: String(process.pid), pid: process.pid, ok: true, starttime: capturePidInfo(process.pid).starttime })
    expect(dead).toMatchObject({ arg: String(gone), pid: gone, ok: false, error: { code: 'process_gone' } })
    expect(zero).toMatchObject({ arg: '0', pid: 0, ok: false, error: { code: 'invalid_pid' } })
    expect(junk).toMatchObject({ arg: 'abc', pid: null, ok: false, error: { code: 'invalid_pid', reason: 'not_a_pid' } })
    for (const e of [dead, zero, junk]) {
      expect(Object.keys(e).sort()).toEqual(['arg', 'error', 'ok', 'pid'])
      expect(Object.keys(e.error).sort()).toEqual(['code', 'message', 'reason'])
    }
  })

  it('prints a readable report', async () => {
    const gone = await reapedPid()
    const ok = await runCli(['probe', String(process.pid)])
    expect(ok.code).toBe(0)
    expect(ok.stdout).toContain(`pid ${process.pid}  starttime ${capturePidInfo(process.pid).starttime}  argv0 `)
    expect(ok.stdout).toMatch(new RegExp(`^boot id +${currentBootId()}$`, 'm'))
    expect(ok.stdout).toMatch(/^machine id +\S+$/m)
    expect(ok.stdout).toMatch(/^pid namespace +\S+$/m)
    const bad = await runCli(['probe', String(gone)])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toContain(`pid ${gone}  process_gone: `)
  })
})
