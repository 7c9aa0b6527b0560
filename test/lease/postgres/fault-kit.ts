// Shared pieces of the fault tests (pause, partition, poolers, rounds): stores that are always
// closed, holder processes (fixtures/store-agent.mjs), clusters of a test's own, and a bound that
// turns a hang into a failure with a message instead of a test timeout.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { PostgresStore, type PostgresStoreSeams } from '../../../lib/lease/postgres/index.js'
import { type Cluster, stop } from '../../../scripts/pg/cluster.mjs'
import { JsonChild, REPO, cleanup, leaseLib } from '../../helpers/lease.js'
import { closeClients, connect, freshSchema } from '../../helpers/pg.js'

export type StoreOpts = {
  connectionString: string
  schema: string
  ttlMs?: number
  witness?: 'session' | 'none'
  pooler?: 'none' | 'session'
  lockTimeoutMs?: number
}

export type { Msg } from '../../helpers/lease.js'
import type { Msg } from '../../helpers/lease.js'

/**
 * A holder process (fixtures/store-agent.mjs) speaking JSON lines, optionally run under a wrapper
 * command (`ip netns exec NS`): the wrapper execs node, so the pid is the agent's own.
 */
export class Agent extends JsonChild {
  constructor(args: string[], wrap: string[] = []) {
    super(join(REPO, 'test', 'lease', 'postgres', 'fixtures', 'store-agent.mjs'), args, { wrap })
    agents.add(this)
  }

  /** The reply of kind `ev` to `cmd`, with any 'lost' notice that comes first set aside in `events`. */
  async ask(cmd: unknown, ev: string, events: Msg[]): Promise<Msg> {
    this.send(cmd)
    for (;;) {
      const msg = await this.next()
      if (msg.ev === ev) return msg
      if (msg.ev !== 'lost') throw new Error(`expected ${ev}, got ${JSON.stringify(msg)}; stderr: ${this.stderr}`)
      events.push(msg)
    }
  }

  override async kill(): Promise<void> {
    await super.kill()
    agents.delete(this)
  }
}

const agents = new Set<Agent>()
const stores: PostgresStore[] = []
const clusters: Cluster[] = []

/** For afterEach: children first (they hold sessions), then stores, clients, clusters. */
export async function cleanupFaults(): Promise<void> {
  try {
    await Promise.all([...agents].map((a) => a.kill()))
    await cleanup()
    for (const s of stores.splice(0)) await s.close()
    await closeClients()
  } finally {
    for (const c of clusters.splice(0)) await stop(c, { mode: 'immediate' })
  }
}

/** Stops `c` at cleanup (immediate). */
export function ownCluster(c: Cluster): Cluster {
  clusters.push(c)
  return c
}

/** A fresh schema on the server behind `cs` (migrated through `admin`, default: cs itself). */
export async function setup(cs: string, extra: Partial<StoreOpts> = {}, admin: string = cs): Promise<StoreOpts> {
  const client = await connect(admin)
  return { connectionString: cs, schema: await freshSchema(client), ...extra }
}

export function open(o: StoreOpts, seams?: PostgresStoreSeams): PostgresStore {
  const s = new PostgresStore(o, seams)
  stores.push(s)
  return s
}

/** A holder process on the store `o`; `wrap` runs it under another command (ip netns exec). */
export async function holder(o: StoreOpts, opts: { wrap?: string[]; seams?: Record<string, unknown> } = {}): Promise<Agent> {
  const c = new Agent([await leaseLib(), JSON.stringify(o), JSON.stringify(opts.seams ?? {})], opts.wrap)
  await c.expect('ready')
  return c
}

export const key = (): string => `k-${randomBytes(4).toString('hex')}`

/** `p`, or a failure naming `what` once `ms` have passed: a hang is a finding, not a test timeout. */
export async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, bound])
  } finally {
    clearTimeout(timer)
  }
}

/** CLOCK_MONOTONIC in ms: the same clock in every process on this machine. */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** Polls an async check every 5 ms until it holds; fails naming `what` after limitMs. */
export async function pollUntilAsync(what: string, check: () => Promise<boolean>, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
