// Resource hygiene: 10,000 acquire/release cycles in one process — plain ones, and ones that go
// through every waiting path (woken by a release, deadline, abort, try-mode busy, a holder in
// another process that releases or dies) — leave file descriptors, directory watches (counted by
// the kernel and by a wrapper around fs.watch), exit watches, timers, active handles and
// listeners exactly where they were.
import { getEventListeners } from 'node:events'
import * as fs from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, tryAcquireLease, withLease } from '../lib/index.js'
import { type Child, killAll, nodeChild } from './helpers/children.js'

const DIST = fileURLToPath(new URL('../dist/index.cjs', import.meta.url))
const base = fs.mkdtempSync(join(tmpdir(), 'proclease-hygiene-'))
const lockRoot = join(base, 'root')

// Count fs.watch watchers that are open, through the CommonJS fs object that the ESM namespace
// mirrors (syncBuiltinESMExports), so the engine's own `fs.watch` calls go through it.
const cjsFs = createRequire(import.meta.url)('node:fs') as typeof fs
const realWatch = cjsFs.watch
let openWatchers = 0
let watchersCreated = 0
cjsFs.watch = ((...args: Parameters<typeof fs.watch>) => {
  const w = realWatch(...args)
  openWatchers++
  watchersCreated++
  let closed = false
  w.on('close', () => {
    if (!closed) {
      closed = true
      openWatchers--
    }
  })
  return w
}) as typeof fs.watch
syncBuiltinESMExports()

afterAll(async () => {
  cjsFs.watch = realWatch
  syncBuiltinESMExports()
  try {
    await killAll()
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
  }
})

interface Snapshot {
  fds: number
  fdKinds: Record<string, number>
  inotifyWatches: number
  openWatchers: number
  resources: Record<string, number>
  exitListeners: number
  listeners: Record<string, number>
}

function fdKind(target: string): string {
  if (target.startsWith('anon_inode:')) return target
  if (target.startsWith('socket:')) return 'socket'
  if (target.startsWith('pipe:')) return 'pipe'
  if (target.startsWith(base)) return 'lock file'
  return 'file'
}

function snapshot(): Snapshot {
  const fdKinds: Record<string, number> = {}
  let fds = 0
  let inotifyWatches = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue // the directory handle readdirSync itself used
    }
    fds++
    const kind = fdKind(target)
    fdKinds[kind] = (fdKinds[kind] ?? 0) + 1
    if (kind === 'anon_inode:inotify') {
      inotifyWatches += fs
        .readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('inotify wd:')).length
    }
  }
  const resources: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1
  const listeners: Record<string, number> = {}
  for (const ev of ['exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'uncaughtException', 'unhandledRejection', 'warning']) {
    listeners[ev] = process.listenerCount(ev)
  }
  return { fds, fdKinds, inotifyWatches, openWatchers, resources, exitListeners: process.listenerCount('exit'), listeners }
}

/** A child that takes `key` on "hold", releases on "release", and answers each with a line. */
function remoteHolder(): Child {
  return nodeChild(`
    const { acquireLease } = require(${JSON.stringify(DIST)});
    let lease = null;
    require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
      const [cmd, key] = line.split(' ');
      if (cmd === 'hold') { lease = await acquireLease({ key, limit: 1, lockRoot: ${JSON.stringify(lockRoot)}, waitMs: 10000 }); console.log('held'); }
      if (cmd === 'release') { console.log('released ' + (await lease.release())); }
    });
    console.log('ready');
  `)
}

const opts = (key: string, extra: Record<string, unknown> = {}) => ({ key, limit: 1, lockRoot, ...extra })

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(LeaseError)
  expect((err as LeaseError).code).toBe(code)
}

// ---- the cycle kinds ------------------------------------------------------------------------

async function plain(i: number): Promise<void> {
  if (i % 3 === 0) {
    const lease = await acquireLease(opts('plain', { waitMs: 5000 }))
    expect(lease.releaseSync()).toBe(true)
  } else if (i % 3 === 1) {
    expect(await withLease(opts('plain'), (l) => l.slot)).toBe(0)
  } else {
    const lease = await acquireLease(opts('plain'))
    expect(await lease.release()).toBe(true)
  }
}

async function tryBusy(): Promise<void> {
  const held = await acquireLease(opts('try'))
  expect(await tryAcquireLease(opts('try'))).toBeNull()
  expect(await held.release()).toBe(true)
}

/** A waiter that goes to sleep on the watch and is woken by the release. */
async function wokenByRelease(): Promise<void> {
  const held = await acquireLease(opts('wake'))
  let started = false
  const waiting = acquireLease(
    opts('wake', {
      waitMs: 10_000,
      signal: new AbortController().signal,
    }),
  ).then((l) => {
    started = true
    return l
  })
  await delay(1)
  expect(started).toBe(false)
  expect(await held.release()).toBe(true)
  const lease = await waiting
  expect(await lease.release()).toBe(true)
}

async function deadline(): Promise<void> {
  const held = await acquireLease(opts('deadline'))
  await expectCode(acquireLease(opts('deadline', { waitMs: 3 })), 'lease_busy')
  expect(await held.release()).toBe(true)
}

async function aborted(): Promise<void> {
  const held = await acquireLease(opts('abort'))
  const ac = new AbortController()
  const waiting = acquireLease(opts('abort', { waitMs: 10_000, signal: ac.signal }))
  setTimeout(() => ac.abort(), 2)
  await expectCode(waiting, 'aborted')
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0)
  expect(await held.release()).toBe(true)
}

const KINDS: Array<[number, (i: number) => Promise<void>]> = [
  [9000, plain],
  [400, tryBusy],
  [400, wokenByRelease],
  [100, deadline],
  [100, aborted],
]

/** A deterministic interleaving of the kinds, so no kind runs only at the start or the end. */
function schedule(): Array<(i: number) => Promise<void>> {
  const out: Array<(i: number) => Promise<void>> = []
  const left = KINDS.map(([n]) => n)
  let x = 12345
  while (out.length < 10_000) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    let r = x % left.reduce((a, b) => a + b, 0)
    for (let k = 0; k < left.length; k++) {
      if (r < (left[k] as number)) {
        left[k] = (left[k] as number) - 1
        out.push((KINDS[k] as [number, (i: number) => Promise<void>])[1])
        break
      }
      r -= left[k] as number
    }
  }
  return out
}

/**
 * Descriptors, watches and listeners must be back exactly where they were. Active resources
 * (handles, timers) may not exceed the baseline: the test runner's own timers come and go.
 */
function expectBack(after: Snapshot, before: Snapshot): void {
  const { resources: ra, ...restAfter } = after
  const { resources: rb, ...restBefore } = before
  expect(restAfter).toEqual(restBefore)
  for (const [kind, n] of Object.entries(ra)) expect({ kind, n: Math.min(n, rb[kind] ?? 0) }).toEqual({ kind, n })
}

async function settled(): Promise<Snapshot> {
  // Let closed handles finish closing (a closed watcher or timer leaves on the next loop turn).
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
  await delay(20)
  return snapshot()
}

describe('resource hygiene', () => {
  it('10,000 acquire/release cycles, through every waiting path, leave no resource behind', async () => {
    const remote = remoteHolder()
    await remote.expectLine('ready')

    // Warm-up: one of each, so one-time state (the addon, cached identity, libuv's inotify
    // descriptor, the vetted root, each key's directory) exists before the baseline.
    for (const [, kind] of KINDS) await kind(0)
    const crossProcess = async (): Promise<void> => {
      remote.proc.stdin?.write('hold remote\n')
      await remote.expectLine('held')
      const waiting = acquireLease(opts('remote', { waitMs: 10_000 }))
      await delay(2)
      remote.proc.stdin?.write('release\n')
      await remote.expectLine('released true')
      expect(await (await waiting).release()).toBe(true)
    }
    await crossProcess()

    const before = await settled()
    expect(before.openWatchers).toBe(0)

    const watchersAtStart = watchersCreated
    const started = performance.now()
    const plan = schedule()
    for (let i = 0; i < plan.length; i++) {
      await (plan[i] as (i: number) => Promise<void>)(i)
      // A holder in another process, woken through the watch and the exit watch on its pid.
      if (i % 1000 === 999) await crossProcess()
    }
    const elapsed = performance.now() - started

    const after = await settled()
    expectBack(after, before)
    // The waiting paths did create (and close) watchers: the check above is not vacuous (every
    // waiter woken by a release watched; deadline waiters may give up before they watch).
    expect(watchersCreated - watchersAtStart).toBeGreaterThanOrEqual(400)
    console.log(`hygiene: 10,000 cycles (+10 cross-process) in ${Math.round(elapsed)} ms; ${watchersCreated - watchersAtStart} watchers opened and closed; fds ${after.fds}`)
  }, 180_000)

  it('a holder in another process that dies wakes the waiter, and its exit watch is closed', async () => {
    const before = await settled()
    for (let i = 0; i < 5; i++) {
      const remote = remoteHolder()
      await remote.expectLine('ready')
      remote.proc.stdin?.write('hold dies\n')
      await remote.expectLine('held')
      const waiting = acquireLease(opts('dies', { waitMs: 30_000 }))
      await delay(5)
      await remote.kill()
      expect(await (await waiting).release()).toBe(true)
    }
    const after = await settled()
    expectBack(after, before)
  }, 60_000)
})
