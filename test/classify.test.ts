// DESIGN §2.2: the classification table through the ctx seams, then the same rules with real
// processes and the fail-closed bindings.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { type HolderRecord, ProbeError, capturePidInfo, classifyHolder, hostIdentity } from '../lib/index.js'
import { type HostIdentity, type PidInfo, createProbes } from '../lib/probes.js'
import { unsupportedBinding } from './helpers/bindings.js'
import { killAll, nodeChild, reapedPid, sleeper, zombieMaker } from './helpers/children.js'

afterAll(killAll)

const BOOT = '0b6c4f8e-3c4f-4d36-9d0e-6c1f2a7b9e01'
const OTHER_BOOT = '7f1d2c3b-4a5e-4f60-8a9b-0c1d2e3f4a5b'

const judge: HostIdentity = { bootId: BOOT, hostname: 'judge-host', machineId: 'aaaa', pidNamespace: '4026531836' }

function record(over: Partial<HolderRecord> = {}): HolderRecord {
  return {
    pid: 4242,
    starttime: '123456',
    argv0: 'worker',
    bootId: BOOT,
    hostname: 'judge-host',
    machineId: 'aaaa',
    pidNamespace: '4026531836',
    ...over,
  }
}

/** A capture seam answering with a fixed identity, counting its calls. */
function answering(info: Partial<PidInfo> = {}) {
  return vi.fn((pid: number): PidInfo => ({ pid, starttime: '123456', argv0: 'worker', ...info }))
}

function throwing(code: ProbeError['code'], reason = 'test') {
  return vi.fn((pid: number): PidInfo => {
    throw new ProbeError(code, reason, `${code} for ${pid}`, pid)
  })
}

describe('classification table (seams)', () => {
  it('same host, same boot, same start time → alive', () => {
    const capture = answering()
    expect(classifyHolder(record(), { capture, host: judge })).toBe('alive')
    expect(capture).toHaveBeenCalledExactlyOnceWith(4242)
  })

  it('rule 1: hostname differs and a machine id is unknown → foreign, without probing', () => {
    const capture = answering()
    expect(classifyHolder(record({ hostname: 'elsewhere', machineId: null }), { capture, host: judge })).toBe('foreign')
    expect(classifyHolder(record({ hostname: 'elsewhere' }), { capture, host: { ...judge, machineId: null } })).toBe('foreign')
    expect(capture).not.toHaveBeenCalled()
  })

  // Issue 12, item 1: configd rewrites a Mac's hostname on network changes, so the machine id
  // (hardware UUID, /etc/machine-id) decides "same host" whenever both records carry one.
  it('rule 1: same machine id, only the hostname differs → same host: probed, alive', () => {
    const capture = answering()
    expect(classifyHolder(record({ hostname: 'renamed-by-configd' }), { capture, host: judge })).toBe('alive')
    expect(capture).toHaveBeenCalledExactlyOnceWith(4242)
  })

  it('rule 1: same machine id, hostname and boot id both differ → dead (a reboot under a new name)', () => {
    const capture = answering()
    expect(classifyHolder(record({ hostname: 'old-name', bootId: OTHER_BOOT }), { capture, host: judge })).toBe('dead')
    expect(capture).not.toHaveBeenCalled()
  })

  it('rule 1: same machine id, other hostname, same boot (containers of one host) → the pid rules decide', () => {
    // Another pid namespace: unverifiable, never probed.
    const capture = answering()
    const container = record({ hostname: 'container-a', pidNamespace: '4026532999' })
    expect(classifyHolder(container, { capture, host: judge })).toBe('unverifiable')
    expect(capture).not.toHaveBeenCalled()
    // The same pid namespace: the probe speaks.
    expect(classifyHolder(record({ hostname: 'container-a' }), { capture: throwing('process_gone'), host: judge })).toBe('dead')
    expect(classifyHolder(record({ hostname: 'container-a' }), { capture: answering({ starttime: '9' }), host: judge })).toBe('dead')
    // A sentinel boot id proves nothing: still probed.
    const sentinel = record({ hostname: 'container-a', bootId: 'unknown-container-a' })
    expect(classifyHolder(sentinel, { capture: answering(), host: judge })).toBe('alive')
  })

  it('rule 1: same hostname but machine ids differ → foreign, without probing', () => {
    const capture = answering()
    expect(classifyHolder(record({ machineId: 'bbbb' }), { capture, host: judge })).toBe('foreign')
    // Even with another boot id: another machine's reboot proves nothing here.
    expect(classifyHolder(record({ machineId: 'bbbb', bootId: OTHER_BOOT }), { capture, host: judge })).toBe('foreign')
    expect(capture).not.toHaveBeenCalled()
  })

  it('rule 1: an empty machine id counts as unknown (the hostname decides)', () => {
    expect(classifyHolder(record({ machineId: '' }), { capture: answering(), host: judge })).toBe('alive')
    expect(classifyHolder(record({ machineId: '', hostname: 'elsewhere' }), { capture: answering(), host: judge })).toBe('foreign')
  })

  it('rule 1: an unknown machine id on either side does not make a holder foreign', () => {
    expect(classifyHolder(record({ machineId: null }), { capture: answering(), host: judge })).toBe('alive')
    expect(classifyHolder(record(), { capture: answering(), host: { ...judge, machineId: null } })).toBe('alive')
  })

  it('rule 1 comes before rule 2: another host with another boot is foreign, not dead', () => {
    const host = judge
    expect(classifyHolder(record({ machineId: 'bbbb', bootId: OTHER_BOOT }), { capture: answering(), host })).toBe('foreign')
    const noIds = record({ hostname: 'elsewhere', machineId: null, bootId: OTHER_BOOT })
    expect(classifyHolder(noIds, { capture: answering(), host })).toBe('foreign')
  })

  it('rule 2: both boot ids genuine and different → dead (reboot), without probing', () => {
    const capture = answering()
    expect(classifyHolder(record({ bootId: OTHER_BOOT }), { capture, host: judge })).toBe('dead')
    expect(capture).not.toHaveBeenCalled()
  })

  it('rule 2: a sentinel boot id on the record side never proves a reboot', () => {
    const capture = answering()
    expect(classifyHolder(record({ bootId: 'unknown-judge-host' }), { capture, host: judge })).toBe('alive')
    expect(capture).toHaveBeenCalledOnce()
  })

  it('rule 2: a sentinel boot id on the judge side never proves a reboot', () => {
    const capture = answering()
    expect(classifyHolder(record(), { capture, host: { ...judge, bootId: 'unknown-judge-host' } })).toBe('alive')
    expect(capture).toHaveBeenCalledOnce()
  })

  it('rule 2: sentinels on both sides, or an empty/missing boot id, prove nothing either', () => {
    const host = { ...judge, bootId: 'unknown-judge-host' }
    expect(classifyHolder(record({ bootId: 'unknown-other' }), { capture: answering(), host })).toBe('alive')
    expect(classifyHolder(record({ bootId: '' }), { capture: answering(), host: judge })).toBe('alive')
    const noBoot = { ...record(), bootId: undefined } as unknown as HolderRecord
    expect(classifyHolder(noBoot, { capture: answering(), host: judge })).toBe('alive')
  })

  it('rule 2 with a sentinel still lets the probe prove death', () => {
    const capture = throwing('process_gone')
    expect(classifyHolder(record({ bootId: 'unknown-judge-host' }), { capture, host: judge })).toBe('dead')
  })

  it('rule 3: another pid namespace → unverifiable, without probing', () => {
    const capture = answering()
    expect(classifyHolder(record({ pidNamespace: '4026532999' }), { capture, host: judge })).toBe('unverifiable')
    expect(capture).not.toHaveBeenCalled()
    // Even a probe that would say "gone" is never asked.
    const gone = throwing('process_gone')
    expect(classifyHolder(record({ pidNamespace: '4026532999' }), { capture: gone, host: judge })).toBe('unverifiable')
    expect(gone).not.toHaveBeenCalled()
  })

  it('rule 3: an unknown namespace on either side falls through to the probe', () => {
    expect(classifyHolder(record({ pidNamespace: null }), { capture: answering(), host: judge })).toBe('alive')
    expect(classifyHolder(record(), { capture: answering(), host: { ...judge, pidNamespace: null } })).toBe('alive')
  })

  it('rule 4: process_gone → dead', () => {
    expect(classifyHolder(record(), { capture: throwing('process_gone', 'no_such_process'), host: judge })).toBe('dead')
    expect(classifyHolder(record(), { capture: throwing('process_gone', 'zombie'), host: judge })).toBe('dead')
  })

  it('rule 4: invalid_pid → dead', () => {
    expect(classifyHolder(record(), { capture: throwing('invalid_pid'), host: judge })).toBe('dead')
  })

  it.each(['permission_denied', 'proc_hidden', 'unsupported_platform', 'native_unavailable'])(
    'rule 4: capture_error (%s) → unverifiable, never dead',
    (reason) => {
      expect(classifyHolder(record(), { capture: throwing('capture_error', reason), host: judge })).toBe('unverifiable')
    },
  )

  it('rule 4: an unexpected exception from the probe → unverifiable, never dead', () => {
    const capture = vi.fn((): PidInfo => {
      throw new TypeError('surprise')
    })
    expect(classifyHolder(record(), { capture, host: judge })).toBe('unverifiable')
  })

  it('rule 5: start time differs → dead (pid reused)', () => {
    expect(classifyHolder(record(), { capture: answering({ starttime: '123457' }), host: judge })).toBe('dead')
  })

  it('rule 5: equal start time with a different or missing argv0 → alive', () => {
    expect(classifyHolder(record(), { capture: answering({ argv0: 'renamed' }), host: judge })).toBe('alive')
    expect(classifyHolder(record(), { capture: answering({ argv0: null }), host: judge })).toBe('alive')
    expect(classifyHolder(record({ argv0: null }), { capture: answering(), host: judge })).toBe('alive')
  })

  it('a malformed record is not dead and does not throw', () => {
    expect(classifyHolder(null as unknown as HolderRecord, { capture: answering(), host: judge })).toBe('unverifiable')
    expect(classifyHolder(record({ starttime: '' }), { capture: answering(), host: judge })).toBe('unverifiable')
  })
})

describe('the default probe', () => {
  it('is captureIdentity: judging never reads argv0 (issue 12, item 5)', async () => {
    const calls: string[] = []
    vi.resetModules()
    vi.doMock('../lib/probes.js', async (importOriginal) => {
      const real = await importOriginal<typeof import('../lib/probes.js')>()
      return {
        ...real,
        capturePidInfo: (pid: number) => {
          calls.push('capturePidInfo')
          return real.capturePidInfo(pid)
        },
        captureIdentity: (pid: number) => {
          calls.push('captureIdentity')
          return real.captureIdentity(pid)
        },
      }
    })
    try {
      const fresh = await import('../lib/classify.js')
      const probes = await import('../lib/probes.js')
      const rec = { ...probes.captureIdentity(process.pid), argv0: null, ...probes.hostIdentity() }
      calls.length = 0
      expect(fresh.classifyHolder(rec)).toBe('alive')
      expect(calls).toEqual(['captureIdentity'])
    } finally {
      vi.doUnmock('../lib/probes.js')
      vi.resetModules()
    }
  })
})

describe('records with invalid pids are dead (lesson 8), through the real probe', () => {
  it.each([
    ['0', 0],
    ['-1', -1],
    ['-42', -42],
    ['1.5', 1.5],
    ['NaN', Number.NaN],
    ["'12' (a string)", '12'],
    ['null', null],
  ])('pid %s → dead', (_label, pid) => {
    const host = hostIdentity()
    const r = { ...record(), ...host, pid } as unknown as HolderRecord
    expect(classifyHolder(r, { host })).toBe('dead')
    expect(classifyHolder(r)).toBe('dead')
  })
})

describe('classification with real processes', () => {
  function recordOf(pid: number): HolderRecord {
    return { ...capturePidInfo(pid), ...hostIdentity() }
  }

  it('this process is alive', () => {
    expect(classifyHolder(recordOf(process.pid))).toBe('alive')
  })

  it('a live child is alive, and dead once reaped', async () => {
    const c = sleeper()
    const r = recordOf(c.pid)
    expect(classifyHolder(r)).toBe('alive')
    await c.kill()
    expect(classifyHolder(r)).toBe('dead')
  })

  it('an exited, reaped pid is dead', async () => {
    const pid = await reapedPid()
    expect(classifyHolder({ ...hostIdentity(), pid, starttime: '1', argv0: 'true' })).toBe('dead')
  })

  it('an unreaped zombie is dead', async () => {
    const { holder, zombie } = await zombieMaker()
    expect(classifyHolder({ ...hostIdentity(), pid: zombie, starttime: '1', argv0: null })).toBe('dead')
    await holder.kill()
  })

  it('a live process whose start time differs from the record is dead (pid reuse)', () => {
    const r = recordOf(process.pid)
    expect(classifyHolder({ ...r, starttime: String(BigInt(r.starttime) + 1n) })).toBe('dead')
  })

  it('a live child that rewrote process.title is still alive', async () => {
    const c = nodeChild(
      "console.log('started'); process.stdin.once('data', () => { process.title = 'renamed-holder'; console.log('titled') })",
    )
    await c.expectLine('started')
    const r = recordOf(c.pid)
    c.proc.stdin?.write('go\n')
    await c.expectLine('titled')
    const now = capturePidInfo(c.pid)
    expect(now.argv0).toBe('renamed-holder')
    expect(now.argv0).not.toBe(r.argv0)
    expect(classifyHolder(r)).toBe('alive')
    await c.kill()
  })

  it('a record from another (genuine) boot is dead without probing, even for a live pid', () => {
    const capture = vi.fn(capturePidInfo)
    const r = { ...recordOf(process.pid), bootId: randomUUID() }
    expect(classifyHolder(r, { capture })).toBe('dead')
    expect(capture).not.toHaveBeenCalled()
  })

  it('a record with a sentinel boot id for a live process is alive', () => {
    expect(classifyHolder({ ...recordOf(process.pid), bootId: `unknown-${hostname()}` })).toBe('alive')
  })

  it('a record from another pid namespace is unverifiable, without probing', () => {
    const capture = vi.fn(capturePidInfo)
    const r = { ...recordOf(process.pid), pidNamespace: '1' }
    expect(classifyHolder(r, { capture })).toBe('unverifiable')
    expect(capture).not.toHaveBeenCalled()
  })
})

describe('classification on hosts whose probes cannot work', () => {
  it.each([
    ['native binding missing', () => createProbes({ binding: null, error: new Error('x') })],
    ['unsupported platform', () => createProbes({ binding: unsupportedBinding(), error: null })],
  ])('%s: live, reaped and invalid holders are never proven dead by the broken probe', async (_label, make) => {
    const p = make()
    const host = p.hostIdentity()
    expect(host.bootId).toBe(`unknown-${hostname()}`)
    const ctx = { capture: p.capturePidInfo, host }
    const live = { ...capturePidInfo(process.pid), ...hostIdentity() }
    // The record carries this boot's genuine id; the judge only has a sentinel: no reboot proof.
    expect(classifyHolder(live, ctx)).toBe('unverifiable')
    const pid = await reapedPid()
    expect(classifyHolder({ ...live, pid }, ctx)).toBe('unverifiable')
    // Invalid pids are judged before the binding is needed: still dead (lesson 8).
    expect(classifyHolder({ ...live, pid: 0 }, ctx)).toBe('dead')
  })
})
