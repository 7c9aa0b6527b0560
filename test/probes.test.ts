// Probes against real processes, checked against an independent reading of /proc.
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultBinding } from '../lib/binding.js'
import { ProbeError, capturePidInfo, currentBootId, hostIdentity, isUnknownBootId, verifyPidInfo } from '../lib/index.js'
import { captureIdentity, createProbes } from '../lib/probes.js'
import { countingBinding } from './helpers/bindings.js'
import { Child, killAll, nodeChild, reapedPid, sleeper, zombieMaker } from './helpers/children.js'
import {
  kernelArgv0,
  kernelBootId,
  kernelMachineId,
  kernelPidMax,
  kernelPidNamespace,
  kernelStat,
  kernelState,
  otherThreadIds,
  pollUntil,
} from './helpers/kernel.js'
import { probeError } from './helpers/probe-error.js'

let scratch: string
beforeAll(() => {
  expect(defaultBinding.error).toBeNull()
  scratch = mkdtempSync(join(tmpdir(), 'proclease-probes-'))
})
afterAll(async () => {
  try {
    await killAll()
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})

describe('capturePidInfo on live processes', () => {
  it('describes this process as the kernel does', () => {
    const info = capturePidInfo(process.pid)
    const k = kernelStat(process.pid)
    expect(info.pid).toBe(process.pid)
    expect(info.starttime).toBe(k.starttime)
    expect(info.starttime).toMatch(/^\d+$/)
    expect(info.argv0).toBe(kernelArgv0(process.pid))
    expect(info.threads).toBeGreaterThan(1)
    expect(info.state).toMatch(/^[RS]$/)
  })

  it('describes a spawned child as the kernel does, and stays stable', async () => {
    const c = sleeper()
    // Wait until it sleeps: its state is stable from then on, so both readings agree.
    await pollUntil('sleep to exec and sleep', () => kernelArgv0(c.pid) === 'sleep' && kernelState(c.pid) === 'S')
    const info = capturePidInfo(c.pid)
    const k = kernelStat(c.pid)
    expect(info).toEqual({ pid: c.pid, starttime: k.starttime, argv0: 'sleep', state: k.state, threads: 1 })
    expect(capturePidInfo(c.pid).starttime).toBe(info.starttime)
    await c.kill()
  })

  it('keeps the start time when a live child rewrites process.title', async () => {
    const c = nodeChild(
      "console.log('started'); process.stdin.once('data', () => { process.title = 'renamed-by-test'; console.log('titled') })",
    )
    await c.expectLine('started')
    const before = capturePidInfo(c.pid)
    expect(before.argv0).toBe(kernelArgv0(c.pid))
    c.proc.stdin?.write('go\n')
    await c.expectLine('titled')
    const after = capturePidInfo(c.pid)
    expect(kernelArgv0(c.pid)).toBe('renamed-by-test')
    expect(after.argv0).toBe('renamed-by-test')
    expect(after.argv0).not.toBe(before.argv0)
    expect(after.starttime).toBe(before.starttime)
    expect(verifyPidInfo(before)).toEqual({ match: true })
    await c.kill()
  })

  // comm is the executable's basename; these names break a parser that splits at the first ')'
  // or at whitespace before it.
  it.each([
    ['x) Z 1 (y'],
    ['q) S 1 2 3 4 5'],
    ['a\n) R 1 (b'],
  ])('parses stat after the last parenthesis for a binary named %j', async (name) => {
    const exe = join(scratch, name)
    copyFileSync('/bin/sleep', exe)
    chmodSync(exe, 0o755)
    const c = new Child(exe, ['1000'])
    await pollUntil('the renamed sleep to exec and sleep', () => kernelArgv0(c.pid) === exe && kernelState(c.pid) === 'S')
    const k = kernelStat(c.pid)
    expect(k.comm).toBe(name)
    const info = capturePidInfo(c.pid)
    expect(info.starttime).toBe(k.starttime)
    expect(info.state).toBe(k.state)
    expect(info.state).not.toBe('Z')
    expect(info.threads).toBe(1)
    expect(info.argv0).toBe(exe)
    await c.kill()
  })
})

describe('capturePidInfo proves absence', () => {
  it('reports an exited, reaped child as process_gone', async () => {
    const pid = await reapedPid()
    expect(kernelState(pid)).toBeNull()
    const err = probeError(() => capturePidInfo(pid))
    expect(err.code).toBe('process_gone')
    expect(err.pid).toBe(pid)
  })

  it('reports an unreaped zombie as process_gone', async () => {
    const { holder, zombie } = await zombieMaker()
    expect(kernelState(zombie)).toBe('Z')
    const err = probeError(() => capturePidInfo(zombie))
    expect(err.code).toBe('process_gone')
    expect(err.reason).toBe('zombie')
    // Still a zombie after the probe: the probe itself did not race with a reap.
    expect(kernelState(zombie)).toBe('Z')
    expect(verifyPidInfo({ pid: zombie, starttime: kernelStat(zombie).starttime, argv0: null })).toEqual({
      match: false,
      reason: 'process_gone',
    })
    await holder.kill()
  })

  it('reports a thread id of this process as process_gone', () => {
    const tids = otherThreadIds()
    expect(tids.length).toBeGreaterThan(0)
    const tid = tids[0] as number
    expect(tid).not.toBe(process.pid)
    // The kernel does answer /proc/<tid>/stat: it is the leader check that makes it gone.
    expect(kernelStat(tid).state).toMatch(/^[RSD]$/)
    const err = probeError(() => capturePidInfo(tid))
    expect(err.code).toBe('process_gone')
    expect(err.reason).toBe('not_a_process')
  })
})

describe('capturePidInfo rejects what is not a pid', () => {
  const pidMax = kernelPidMax()
  it.each([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['2**53', 2 ** 53],
    ["'12'", '12'],
    ['null', null],
    ['undefined', undefined],
    ['{}', {}],
    ['above pid_max', pidMax + 1],
    ['the absolute Linux limit + 1', 4194305],
  ])('%s is invalid_pid', (_label, pid) => {
    const err = probeError(() => capturePidInfo(pid as number))
    expect(err.code).toBe('invalid_pid')
  })

  it('the raw binding refuses the same values before any syscall', () => {
    const b = defaultBinding.binding
    expect(b).not.toBeNull()
    for (const pid of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '12', null, 4194305]) {
      const r = b?.capture(pid as number)
      expect(r).toMatchObject({ ok: false, code: 'invalid_pid' })
    }
  })
})

// Issue 12, item 5: judging a holder needs pid, start time and state, never argv0, whose read
// costs a file (Linux cmdline) or a kern.argmax-sized copy (macOS KERN_PROCARGS2) per call.
describe('captureIdentity (capturePidInfo without argv0)', () => {
  it('describes a live child as capturePidInfo does, minus argv0', async () => {
    const c = sleeper()
    await pollUntil('sleep to exec and sleep', () => kernelArgv0(c.pid) === 'sleep' && kernelState(c.pid) === 'S')
    const k = kernelStat(c.pid)
    const id = captureIdentity(c.pid)
    expect(id).toEqual({ pid: c.pid, starttime: k.starttime, state: k.state, threads: 1 })
    expect('argv0' in id).toBe(false)
    const { argv0: _argv0, ...full } = capturePidInfo(c.pid)
    expect(id).toEqual(full)
    await c.kill()
  })

  it('the raw binding has no argv0 in its answer, even for a process with one', async () => {
    // A child, not this process: under qemu-user an emulated process's own /proc stat line is
    // composed by qemu, so only another process's is the kernel's.
    const c = sleeper()
    await pollUntil('sleep to exec', () => kernelArgv0(c.pid) === 'sleep')
    const r = defaultBinding.binding?.captureIdentity(c.pid)
    expect(r).toMatchObject({ ok: true, pid: c.pid, starttime: kernelStat(c.pid).starttime })
    expect(r && 'argv0' in r).toBe(false)
    await c.kill()
  })

  it('proves absence and rejects non-pids with the same codes', async () => {
    const pid = await reapedPid()
    expect(probeError(() => captureIdentity(pid)).code).toBe('process_gone')
    const { holder, zombie } = await zombieMaker()
    expect(probeError(() => captureIdentity(zombie))).toMatchObject({ code: 'process_gone', reason: 'zombie' })
    await holder.kill()
    const tid = otherThreadIds()[0] as number
    expect(probeError(() => captureIdentity(tid))).toMatchObject({ code: 'process_gone', reason: 'not_a_process' })
    for (const bad of [0, -1, 1.5, Number.NaN, '12', kernelPidMax() + 1]) {
      expect(probeError(() => captureIdentity(bad as number)).code).toBe('invalid_pid')
    }
  })

  it('reaches only the argv0-free entry point of the binding (and so does verifyPidInfo)', () => {
    if (!defaultBinding.binding) throw defaultBinding.error
    const { binding, calls } = countingBinding(defaultBinding.binding)
    const probes = createProbes({ binding, error: null })
    probes.captureIdentity(process.pid)
    probes.captureIdentity(process.pid)
    expect(calls.captureIdentity).toBe(2)
    // verifyPidInfo needs the start time only, too.
    expect(probes.verifyPidInfo({ ...capturePidInfo(process.pid) })).toEqual({ match: true })
    expect(calls.captureIdentity).toBe(3)
    expect(calls.capture).toBeUndefined()
  })
})

describe('boot and host identity', () => {
  it('currentBootId is the kernel boot id, cached', () => {
    const first = currentBootId()
    expect(first).toBe(kernelBootId())
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(currentBootId()).toBe(first)
    expect(isUnknownBootId(first)).toBe(false)
  })

  it('reads each id from the kernel once per probe instance', () => {
    const real = defaultBinding.binding
    if (!real) throw new Error('binding not loaded')
    const { binding, calls } = countingBinding(real)
    const p = createProbes({ binding, error: null })
    expect(calls.bootId ?? 0).toBe(0)
    const a = p.currentBootId()
    const b = p.currentBootId()
    const h1 = p.hostIdentity()
    const h2 = p.hostIdentity()
    expect(a).toBe(b)
    expect(h1).toEqual(h2)
    expect(h1.bootId).toBe(a)
    expect(calls.bootId).toBe(1)
    expect(calls.machineId).toBe(1)
    expect(calls.pidNamespace).toBe(1)
    p.capturePidInfo(process.pid)
    p.capturePidInfo(process.pid)
    expect(calls.pidMax).toBe(1)
    expect(calls.capture).toBe(2)
  })

  it('hostIdentity matches the kernel and the OS', () => {
    const h = hostIdentity()
    expect(h.bootId).toBe(kernelBootId())
    expect(h.hostname).toBe(hostname())
    const machineId = kernelMachineId()
    if (machineId !== null) expect(h.machineId).toBe(machineId)
    else expect(h.machineId === null || /^[0-9a-f]{32}$/.test(h.machineId)).toBe(true)
    expect(h.pidNamespace).toBe(kernelPidNamespace())
  })
})

describe('verifyPidInfo', () => {
  it('matches a live process captured earlier', () => {
    expect(verifyPidInfo(capturePidInfo(process.pid))).toEqual({ match: true })
  })

  it('matches whatever argv0 the record carries: only the start time decides', () => {
    const saved = { ...capturePidInfo(process.pid), argv0: 'something-else' }
    expect(verifyPidInfo(saved)).toEqual({ match: true })
  })

  it('does not match a different start time (pid reuse)', () => {
    const saved = capturePidInfo(process.pid)
    const other = { ...saved, starttime: String(BigInt(saved.starttime) + 1n) }
    expect(verifyPidInfo(other)).toEqual({ match: false, reason: 'starttime_differs' })
  })

  it('does not match a reaped process', async () => {
    const c = sleeper()
    const saved = capturePidInfo(c.pid)
    await c.kill()
    expect(verifyPidInfo(saved)).toEqual({ match: false, reason: 'process_gone' })
  })

  it('does not match invalid pids', () => {
    expect(verifyPidInfo({ pid: 0, starttime: '1', argv0: null })).toEqual({ match: false, reason: 'invalid_pid' })
    expect(verifyPidInfo({ pid: -1, starttime: '1', argv0: null })).toEqual({ match: false, reason: 'invalid_pid' })
  })

  const throwingGetter = Object.defineProperty({ pid: process.pid }, 'starttime', {
    get() {
      throw new Error('boom')
    },
  })
  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a number', 42],
    ['a string', 'pid'],
    ['an array', [process.pid]],
    ['an empty object', {}],
    ['a string pid', { pid: String(process.pid), starttime: '1' }],
    ['a numeric starttime', { pid: process.pid, starttime: 5 }],
    ['a NaN pid', { pid: Number.NaN, starttime: '1' }],
    ['a throwing getter', throwingGetter],
  ])('never throws on garbage: %s', (_label, saved) => {
    let result: unknown
    expect(() => {
      result = verifyPidInfo(saved as never)
    }).not.toThrow()
    expect(result).toMatchObject({ match: false })
    expect(typeof (result as { reason: unknown }).reason).toBe('string')
  })
})
