// The conformance targets: the file store (both witnesses, and identity alone) and the in-memory
// reference store. Each target file is one line handing one of these to describeStore().
import * as fs from 'node:fs'
import { join } from 'node:path'
import type { HolderRecord } from '../../lib/classify.js'
import { acquireWith, selfHolder } from '../../lib/lease/engine.js'
import { normalizeOptions } from '../../lib/lease/options.js'
import { parseRecord } from '../../lib/lease/records.js'
import { keyDirName } from '../../lib/lease/root.js'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'
import { type FileStoreSpec, type PostgresStoreSpec, openStore } from '../../lib/internal.js'
import { type ClaimFault, migrate } from '../../lib/lease/postgres/schema.js'
import { hostIdentity } from '../../lib/probes.js'
import { freshRoot } from '../helpers/lease.js'
import { localHolders, processHolders } from './holders.js'
import { type Liveness, type MemoryFaults, MemoryStore, MemoryWorld } from './memory-store.js'
import type { Fault, OptionalFault, Peek, StoreTarget } from './target.js'

const SLOT_FILE = /^slot-(\d+)$/

function faultsFor(fault: Fault): MemoryFaults {
  return fault === 'overAdmit' ? { overAdmit: 1 } : { [fault]: true }
}

/** Every optional fault: the reference store has a seam for each. */
const ALL_OPTIONAL: readonly OptionalFault[] = [
  'releaseIgnoresToken',
  'barge',
  'sumByCount',
  'noticeTwice',
  'sweepDropsNotice',
  'deadPlacesCount',
  'leaveIgnored',
  'quietLoss',
  'pruneResetsFence',
  'pruneBusy',
]

/** The faults the file store's spec can carry (lib/internal.ts SpecFaults). */
const FILE_OPTIONAL: readonly OptionalFault[] = ['barge', 'sumByCount', 'noticeTwice', 'quietLoss', 'leaveIgnored']
const FILE_FAULTS: readonly Fault[] = ['overAdmit', 'reclaimOnSuspicion', 'noGate', 'countByIndex', ...FILE_OPTIONAL]

/** The file store; `kernelWitness: false` judges by identity alone. */
export function fileTarget(opts: { kernelWitness: boolean }): StoreTarget<FileStoreSpec> {
  return {
    name: opts.kernelWitness ? 'file store (kernel lock + identity)' : 'file store (identity only)',
    async spec() {
      return { kind: 'file', root: freshRoot().root, ...(opts.kernelWitness ? {} : { kernelWitness: false }) }
    },
    open: (spec) => openStore(spec),
    async peek(spec, key): Promise<Peek> {
      const dir = join(spec.root, keyDirName(key))
      let names: string[]
      try {
        names = fs.readdirSync(dir)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { holds: 0, fences: [] }
        throw err
      }
      const out: Peek = { holds: 0, fences: [] }
      for (const name of names.filter((n) => SLOT_FILE.test(n))) {
        out.holds++
        const parsed = parseRecord(fs.readFileSync(join(dir, name), 'utf8'))
        if (parsed.ok) out.fences.push(parsed.record.fence)
      }
      out.fences.sort((a, b) => a - b)
      return out
    },
    async evict(spec, key, slot) {
      fs.unlinkSync(join(spec.root, keyDirName(key), `slot-${slot}`))
    },
    async wipe(spec) {
      fs.rmSync(spec.root, { recursive: true, force: true })
    },
    faulty(spec, fault) {
      if (!FILE_FAULTS.includes(fault)) throw new Error(`the file store has no ${fault} seam`)
      return { ...spec, faults: faultsFor(fault) as FileStoreSpec['faults'] }
    },
    optionalFaults: FILE_OPTIONAL,
    crossProcess: true,
    holders: (spec) => processHolders(spec),
    // A holder in another pid namespace: its pid cannot be probed from here. With the kernel
    // witness its held lock keeps it; by identity alone it is unverifiable, so kept too.
    unverifiableHolder: { pidNamespace: 'pid:[proclease-conformance-elsewhere]' },
    outage: { none: 'a local directory has no outage to switch on' },
    secrets: (spec, key) => [spec.root, keyDirName(key), keyDirName(key).slice(-32)],
    capabilities: { releaseSync: true, handOff: true, listKeys: true, pauseMidClaim: true, stoppedHolderKept: true, heldSeesEviction: true, recordsLimit: true, prune: true },
  }
}

export interface MemorySpec {
  kind: 'memory'
  world: string
  faults?: MemoryFaults
}

interface WorldEntry {
  world: MemoryWorld
  dead: Set<number>
  nextPid: number
  /** One store per simulated holder, as each process would open its own. */
  stores: Map<number, MemoryStore>
}

const worlds = new Map<string, WorldEntry>()
let worldCount = 0

function entry(spec: MemorySpec): WorldEntry {
  const e = worlds.get(spec.world)
  if (!e) throw new Error(`no memory world ${spec.world}`)
  return e
}

/** The in-memory reference store; holders are simulated, "killing" one makes the witness prove it gone. */
export const memoryTarget: StoreTarget<MemorySpec> = {
  name: 'in-memory reference store',
  async spec() {
    const id = `w${++worldCount}`
    const self = hostIdentity()
    const dead = new Set<number>()
    const liveness = (h: HolderRecord): Liveness => (h.pidNamespace !== self.pidNamespace ? 'unknown' : dead.has(h.pid) ? 'dead' : 'alive')
    // Pids above any real one (pid_max is at most 2^22), so no simulated holder is this process.
    worlds.set(id, { world: new MemoryWorld(liveness), dead, nextPid: 2 ** 30, stores: new Map() })
    return { kind: 'memory', world: id }
  },
  open: (spec) => new MemoryStore(entry(spec).world, spec.faults),
  async peek(spec, key) {
    const holds = [...(entry(spec).world.keys.get(key)?.values() ?? [])]
    return { holds: holds.length, fences: holds.map((h) => h.fence).sort((a, b) => a - b) }
  },
  async evict(spec, key, slot) {
    entry(spec).world.evict(key, slot)
  },
  async wipe(spec) {
    entry(spec).world.wipe()
  },
  faulty: (spec, fault) => ({ ...spec, faults: faultsFor(fault) }),
  optionalFaults: ALL_OPTIONAL,
  crossProcess: false,
  holders(spec) {
    const e = entry(spec)
    return localHolders({
      newPid: () => e.nextPid++,
      self: selfHolder,
      kill(pid) {
        e.dead.add(pid)
        // The dead make no further calls: its store never answers again (a waiter's loop stops).
        e.stores.get(pid)?.crash()
        e.world.changed()
      },
      async acquireAs(holder, opts, mode, pause, hooks = {}) {
        let store = e.stores.get(holder.pid)
        if (pause) {
          store = new MemoryStore(e.world, spec.faults, {
            afterScan: async () => {
              pause.onPaused()
              await pause.until
            },
          })
        } else if (!store) {
          store = new MemoryStore(e.world, spec.faults)
          e.stores.set(holder.pid, store)
        }
        return acquireWith(store, normalizeOptions({ ...opts, store }), mode, { ...hooks, holder: () => holder })
      },
    })
  },
  unverifiableHolder: { pidNamespace: 'pid:[proclease-conformance-elsewhere]' },
  outage: {
    async start(spec) {
      const w = entry(spec).world
      w.unavailable = true
      return async () => {
        w.unavailable = false
        w.changed()
      }
    },
  },
  secrets: () => [],
  capabilities: { releaseSync: true, handOff: false, listKeys: true, pauseMidClaim: true, stoppedHolderKept: true, heldSeesEviction: true, recordsLimit: true, prune: true },
}

/**
 * The PostgreSQL store on the test server (vitest's globalSetup), one fresh schema per spec.
 * 'session': the session witness and observed expiry; 'none': expiry only (as through a
 * transaction-mode pooler). TTL 2 s keeps the expiry paths short.
 */
export function postgresTarget(opts: { witness: 'session' | 'none' }): StoreTarget<PostgresStoreSpec> {
  const FAULTS: Partial<Record<Fault, ClaimFault>> = {
    overAdmit: 'overAdmit',
    reclaimOnSuspicion: 'reclaimOnSuspicion',
    noGate: 'noGate',
    countByIndex: 'countBelowLimit',
    releaseIgnoresToken: 'releaseIgnoresToken',
  }
  async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: inject('pgConnectionString') })
    c.on('error', () => undefined)
    await c.connect()
    try {
      return await fn(c)
    } finally {
      await c.end()
    }
  }
  return {
    name: opts.witness === 'session' ? 'PostgreSQL store (session witness + expiry)' : 'PostgreSQL store (expiry only)',
    async spec() {
      const schema = `c_${randomBytes(6).toString('hex')}`
      await withClient((c) => migrate(c, schema))
      return { kind: 'postgres', connectionString: inject('pgConnectionString'), schema, ttlMs: 2000, witness: opts.witness }
    },
    open: (spec) => openStore(spec),
    async peek(spec, key): Promise<Peek> {
      return withClient(async (c) => {
        const r = await c.query<{ fence: string }>(`SELECT fence::text AS fence FROM "${spec.schema}".holds WHERE key = $1`, [key])
        return { holds: r.rows.length, fences: r.rows.map((x) => Number(x.fence)).sort((a, b) => a - b) }
      })
    },
    async evict(spec, key, slot) {
      await withClient((c) => c.query(`DELETE FROM "${spec.schema}".holds WHERE key = $1 AND slot = $2`, [key, slot]))
    },
    faulty(spec, fault) {
      const f = FAULTS[fault]
      if (f === undefined) throw new Error(`the PostgreSQL store has no ${fault} seam`)
      return { ...spec, faults: [f] }
    },
    optionalFaults: ['releaseIgnoresToken'],
    crossProcess: true,
    holders: (spec) => processHolders(spec),
    // With the session witness every live holder is proven alive by its session; with expiry
    // only, no witness speaks for a live holder until its TTL has been observed to pass.
    unverifiableHolder: opts.witness === 'session' ? null : {},
    outage: { none: 'the shared test server cannot be stopped here; test/lease/postgres/pause.test.ts shows store_unavailable on a server of its own' },
    secrets: (spec) => [spec.schema, spec.connectionString],
    capabilities: { releaseSync: false, handOff: false, listKeys: true, pauseMidClaim: false, stoppedHolderKept: false, heldSeesEviction: false, recordsLimit: false, prune: true },
  }
}
