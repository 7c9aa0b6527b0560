// Stopped and slow holders: a holder that is SIGSTOPped (or whose event loop is blocked) for
// longer than any waiter's deadline is still alive, so its slot is never reclaimed. Waiters fail
// with lease_busy; once the holder resumes, its release succeeds and the slot passes on.
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { LeaseError, acquireLease, inspectLeases, reclaimLeases, tryAcquireLease } from '../lib/index.js'
import { type Child, killAll, nodeChild } from './helpers/children.js'

const DIST = fileURLToPath(new URL('../dist/index.cjs', import.meta.url))
const dirs: string[] = []
afterEach(async () => {
  await killAll()
})
afterAll(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

function freshRoot(): string {
  const base = fs.mkdtempSync(join(tmpdir(), 'proclease-stopped-'))
  dirs.push(base)
  return join(base, 'root')
}

/** A child holding `key`: answers "release" and "block <ms>" on stdin. */
async function holder(root: string, key: string): Promise<Child> {
  const script = `
    const { acquireLease } = require(${JSON.stringify(DIST)});
    (async () => {
      const lease = await acquireLease({ key: ${JSON.stringify(key)}, limit: 1, lockRoot: ${JSON.stringify(root)}, waitMs: 10000 });
      console.log('held ' + lease.slot);
      require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
        if (line === 'release') console.log('released ' + (await lease.release()));
        const m = /^block (\\d+)$/.exec(line);
        if (m) { const end = Date.now() + Number(m[1]); while (Date.now() < end) {} console.log('unblocked'); }
      });
    })().catch((err) => { console.log('error ' + err.code); process.exit(1); });
  `
  const child = nodeChild(script)
  await child.expectLine('held 0')
  return child
}

async function expectBusy(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(LeaseError)
  expect((err as LeaseError).code).toBe('lease_busy')
}

function slotFile(root: string): { ino: number; path: string } {
  const [dir] = fs.readdirSync(root)
  const path = join(root, dir as string, 'slot-0')
  return { ino: fs.statSync(path).ino, path }
}

describe('stopped and slow holders', () => {
  it('a SIGSTOPped holder keeps its slot past every waiter deadline; waiters get lease_busy', async () => {
    const root = freshRoot()
    const key = 'stopped holder'
    const h = await holder(root, key)
    const before = slotFile(root)
    process.kill(h.pid, 'SIGSTOP')
    try {
      // Waiters with deadlines, together longer than any one of them, in this process.
      await Promise.all([
        expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 150 })),
        expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 400 })),
        expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 800 })),
      ])
      await expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 300 }))
      expect(await tryAcquireLease({ key, limit: 1, lockRoot: root })).toBeNull()
      // A sweep finds nothing to reclaim: the holder is alive, and its kernel lock says so.
      const swept = await reclaimLeases({ key, lockRoot: root })
      expect(swept.reclaimed).toEqual([])
      const status = await inspectLeases({ key, lockRoot: root })
      expect(status.active).toBe(1)
      expect(status.holders.map((x) => x.state)).toEqual(['alive'])
      // The very same record is still there.
      expect(slotFile(root)).toEqual(before)
    } finally {
      process.kill(h.pid, 'SIGCONT')
    }
    h.proc.stdin?.write('release\n')
    await h.expectLine('released true')
    const next = await acquireLease({ key, limit: 1, lockRoot: root, waitMs: 5000 })
    expect(next.slot).toBe(0)
    expect(await next.release()).toBe(true)
  })

  it('a holder whose event loop is blocked keeps its slot; waiters get lease_busy', async () => {
    const root = freshRoot()
    const key = 'slow holder'
    const h = await holder(root, key)
    h.proc.stdin?.write('block 1500\n')
    await Promise.all([
      expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 200 })),
      expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 600 })),
    ])
    expect(await tryAcquireLease({ key, limit: 1, lockRoot: root })).toBeNull()
    await h.expectLine('unblocked')
    h.proc.stdin?.write('release\n')
    await h.expectLine('released true')
  })

  it('a stopped holder that is then killed is reclaimed by the next waiter', async () => {
    const root = freshRoot()
    const key = 'stopped then killed'
    const h = await holder(root, key)
    process.kill(h.pid, 'SIGSTOP')
    await expectBusy(acquireLease({ key, limit: 1, lockRoot: root, waitMs: 200 }))
    const waiting = acquireLease({ key, limit: 1, lockRoot: root, waitMs: 30_000 })
    await h.kill()
    const lease = await waiting
    expect(lease.slot).toBe(0)
    expect(await lease.release()).toBe(true)
  })
})
