// Review findings on the hand-over and the store's lifecycle:
// - before a hold's descriptor is shared with a command, its record stops promising "lock until
//   removal": a command that unlocks its copy (flock -u 3) while alive must not make the slot
//   reclaimable;
// - close() racing a pending release() closes the hold's descriptor once, never twice.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { defaultBinding } from '../../lib/binding.js'
import { acquireWith, leaseInternals } from '../../lib/lease/engine.js'
import { FileStore } from '../../lib/lease/file/index.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { keyDirName } from '../../lib/lease/root.js'
import { cleanup, freshRoot, killTracked, removeLeaseLib, trackPid } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const KEY = 'handoff'

describe('sharing a hold with a command', () => {
  it('a shared hold whose lock was dropped by the command stays occupied while its holder lives', async () => {
    const { root } = freshRoot()
    const store = new FileStore({ root })
    const o = normalizeOptions({ key: KEY, limit: 1, lockRoot: root })
    const lease = await acquireWith(store, o, 'wait')
    const inner = leaseInternals(lease!)!
    expect(await store.handOff.share(inner.hold)).toBe(true)
    const record = JSON.parse(fs.readFileSync(join(root, keyDirName(KEY), `slot-${lease!.slot}`), 'utf8')) as { lockUntilRemoved: boolean }
    expect(record.lockUntilRemoved).toBe(false)
    // What `flock -u 3` in the command does: unlock the shared open file description.
    expect(defaultBinding.binding!.unlock(store.handOff.lockDescriptor(inner.hold))).toBe(0)
    expect(await acquireWith(store, o, 'try')).toBeNull()
    const st = await store.inspect(KEY, true)
    expect(st.holders).toMatchObject([{ state: 'alive', inconsistent: true }])
    expect(await lease!.release()).toBe(true)
  })
})

describe('close() racing release()', () => {
  it('closes the hold once: both calls settle without EBADF', async () => {
    const { root } = freshRoot()
    const store = new FileStore({ root })
    const lease = await acquireWith(store, normalizeOptions({ key: KEY, limit: 1, lockRoot: root }), 'wait')
    // Freeze the gate from another process so the release waits, then close the store meanwhile.
    const gate = join(root, keyDirName(KEY), 'gate')
    const holder = spawn('sh', ['-c', 'exec 9<>"$0" && flock -x 9 && echo locked && exec sleep 600', gate], { stdio: ['ignore', 'pipe', 'inherit'] })
    trackPid(holder.pid!)
    await new Promise<void>((resolve) => createInterface({ input: holder.stdout! }).once('line', () => resolve()))
    const releasing = lease!.release()
    const closing = store.close()
    killTracked(holder.pid!)
    const results = await Promise.allSettled([releasing, closing])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled'])
    expect((results[0] as PromiseFulfilledResult<boolean>).value).toBe(true)
    expect(fs.readdirSync(join(root, keyDirName(KEY))).filter((n) => n.startsWith('slot-'))).toEqual([])
  })
})
