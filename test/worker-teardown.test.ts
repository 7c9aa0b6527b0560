// Issue 8, defect 1: ending a worker thread while it is inside the addon must never abort the
// process. During environment teardown every napi call fails; a C++ wrapper that turns such a
// failure into ThrowAsJavaScriptException then hits a napi_throw that cannot throw and aborts
// (exit 134). The child below terminates many workers a few milliseconds after they start, each
// busy in a different native entry point (capture, the lease engine's locks and exit watches),
// and must exit 0. Before the fix, one round of eight capture workers aborted 10 runs of 10.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { packageRoot } from '../lib/binding.js'

const dist = resolve(packageRoot, 'dist', 'index.cjs')
const root = mkdtempSync(join(tmpdir(), 'proclease-teardown-'))

afterAll(() => {
  rmSync(root, { recursive: true, force: true })
})

// The child: rounds of workers, each terminated `delay` ms after it reports ready (or, for some,
// before it has even loaded the addon). The main thread holds key "busy" so the waiting workers
// arm exit watches on it. Exit 0 only if every round ended with every worker terminated.
const CHILD = String.raw`
const { Worker } = require('node:worker_threads')
const [dist, lockRoot, rounds, pkg] = process.argv.slice(1)
const lib = require(dist)
const loader = require.resolve('node-gyp-build', { paths: [pkg] })

const prelude = 'const { parentPort, workerData } = require("node:worker_threads");' +
  'const lib = require(workerData.dist); parentPort.postMessage("ready");'
const bodies = {
  // Every other entry point of the addon, straight through the binding.
  every: 'const b = require(workerData.loader)(workerData.pkg); const buf = Buffer.alloc(64);' +
    'const fd = require("fs").openSync(workerData.lockRoot, "r"); for (;;) {' +
    ' b.bootId(); b.machineId(); b.pidNamespace(); b.pidMax(); b.platform(); b.captureIdentity(process.pid);' +
    ' b.lockExclusiveNB(fd); b.unlock(fd); b.parseProcargs2(buf); b.procargs2Truncated(1, 2); b.fsInfo(workerData.lockRoot);' +
    ' b.signalOriginCounts(2); b.processGroup(0); b.session(0); b.capture(-1); b.fsInfo(""); b.ExitWatch.length }',
  capture: 'for (;;) lib.capturePidInfo(process.pid)',
  identity: 'for (;;) { lib.hostIdentity(); lib.verifyPidInfo(lib.capturePidInfo(process.pid)) }',
  lease: '(async () => { for (let i = 0; ; i++) {' +
    ' const l = await lib.acquireLease({ key: "k" + (i % 3), limit: 2, lockRoot: workerData.lockRoot });' +
    ' await l.release() } })()',
  wait: 'lib.acquireLease({ key: "busy", limit: 1, lockRoot: workerData.lockRoot })',
}

function start(kind, delay, early) {
  const w = new Worker(prelude + bodies[kind], { eval: true, workerData: { dist, lockRoot, loader, pkg } })
  return new Promise((res, rej) => {
    w.once('error', rej)
    const stop = () => w.terminate().then(res, rej)
    if (early) stop()
    else w.once('message', () => setTimeout(stop, delay))
  })
}

;(async () => {
  process.exitCode = 1 // a loop that drains before "done" is a failure, not a pass
  const held = await lib.acquireLease({ key: 'busy', limit: 1, lockRoot })
  for (let r = 0; r < Number(rounds); r++) {
    const ends = []
    for (let i = 0; i < 8; i++) ends.push(start(i % 2 ? 'capture' : 'identity', i % 4, false))
    ends.push(start('lease', r % 4, false), start('wait', r % 3, false), start('capture', 0, true))
    ends.push(start('every', r % 4, false), start('every', (r + 2) % 4, false))
    await Promise.all(ends)
  }
  await held.release()
  console.log('done')
  process.exitCode = 0
})().catch((err) => {
  console.error(err)
  process.exit(1)
})
`

function runChild(rounds: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, ['-e', CHILD, dist, root, String(rounds), packageRoot], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string }) | null
      res({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout,
        stderr,
      })
    })
  })
}

// ExitWatch, step by step: a worker is terminated with a watch armed, fired, closing, with a
// callback that throws, and while looping constructors that throw (a pid that cannot be watched).
// The main thread of the child owns the watched processes (sleep children) and kills them on cue.
const WATCH_CHILD = String.raw`
const { Worker } = require('node:worker_threads')
const { spawn } = require('node:child_process')
const [pkg] = process.argv.slice(1)
const loader = require.resolve('node-gyp-build', { paths: [pkg] })

// The interval keeps each worker alive until it is terminated (a watch alone never does), and
// globalThis.w keeps each watch from being collected (which closes it).
const prelude = 'const { parentPort, workerData } = require("node:worker_threads");' +
  'setInterval(() => {}, 1 << 30); const b = require(workerData.loader)(workerData.pkg);'
const steps = {
  armed: 'globalThis.w = new b.ExitWatch(workerData.pid, () => {}); parentPort.postMessage("armed")',
  fired: 'globalThis.w = new b.ExitWatch(workerData.pid, () => parentPort.postMessage("fired")); parentPort.postMessage("armed")',
  closing: 'const w = new b.ExitWatch(workerData.pid, () => {}); w.close(); parentPort.postMessage("armed")',
  throwing: 'globalThis.w = new b.ExitWatch(workerData.pid, () => { throw new Error("from the exit callback") }); parentPort.postMessage("armed")',
  refused: 'parentPort.postMessage("armed"); for (;;) { try { new b.ExitWatch(2147483647, () => {}) } catch {} }',
  churn: 'parentPort.postMessage("armed"); for (;;) new b.ExitWatch(workerData.pid, () => {}).close()',
}

function sleeper() {
  const c = spawn('sleep', ['1000'], { stdio: 'ignore' })
  const exited = new Promise((res) => c.once('exit', res))
  return { pid: c.pid, kill: () => { c.kill('SIGKILL'); return exited } }
}

async function step(kind) {
  const s = sleeper()
  const w = new Worker(prelude + steps[kind], { eval: true, workerData: { loader, pkg, pid: s.pid } })
  const errors = []
  w.on('error', (e) => errors.push(e.message))
  const ended = new Promise((res) => w.once('exit', res))
  const next = () => new Promise((res, rej) => {
    w.once('message', res)
    ended.then(() => rej(new Error(kind + ': worker ended early: ' + errors)))
  })
  await next() // armed
  if (kind === 'fired') {
    const fired = next()
    await s.kill()
    await fired
  } else if (kind === 'throwing') {
    await s.kill()
  }
  // 'throwing' ends the worker on its own (uncaught exception in the worker); the rest are ended here.
  if (kind !== 'throwing') await w.terminate()
  await ended
  await s.kill()
  if (kind === 'throwing' && !errors.includes('from the exit callback')) throw new Error('callback error lost: ' + errors)
  if (kind !== 'throwing' && errors.length) throw new Error(kind + ': ' + errors)
}

;(async () => {
  process.exitCode = 1 // a loop that drains before "done" is a failure, not a pass
  for (let r = 0; r < 5; r++) for (const k of Object.keys(steps)) await step(k)
  console.log('done')
  process.exitCode = 0
})().catch((err) => {
  console.error(err)
  process.exit(1)
})
`

describe('terminating workers inside the addon', () => {
  it('never aborts with an ExitWatch armed, fired, closing, throwing or refused', async () => {
    const r = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((res) => {
      execFile(process.execPath, ['-e', WATCH_CHILD, packageRoot], (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null
        res({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr })
      })
    })
    expect({ code: r.code, signal: r.signal, stderr: r.stderr.split('\n').slice(0, 3).join('\n') }).toEqual({
      code: 0,
      signal: null,
      stderr: '',
    })
    expect(r.stdout.trim()).toBe('done')
  })

  it('never aborts the process (capture, identity, leases, exit watches, every entry point)', async () => {
    const r = await runChild(10)
    expect({ code: r.code, signal: r.signal, stderr: r.stderr.split('\n').slice(0, 3).join('\n') }).toEqual({
      code: 0,
      signal: null,
      stderr: '',
    })
    expect(r.stdout.trim()).toBe('done')
  })
})
