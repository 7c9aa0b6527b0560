// PostgreSQL test helpers: clients that are always closed, a fresh schema per test, faulty
// function variants, a bundle of the server-call modules for child processes, and waiting on
// server state (pg_stat_activity) instead of sleeping.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildSync } from 'esbuild'
import pg from 'pg'
import { afterAll, afterEach, inject } from 'vitest'
import { cleanup as cleanupLeases, removeLeaseLib } from './lease.js'
import { type ClaimFault, functionsSql, migrate } from '../../lib/lease/postgres/schema.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export function connectionString(): string {
  const cs = inject('pgConnectionString')
  if (typeof cs !== 'string' || cs === '') throw new Error('no PostgreSQL connection string: is test/helpers/pg-setup.ts in globalSetup?')
  return cs
}

const open = new Set<pg.Client>()

/** A connected client, closed by closeClients(). Errors after a server kill are expected: kept, not thrown. */
export async function connect(cs: string = connectionString()): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: cs })
  client.on('error', () => {
    // A terminated session emits 'error' on the idle client; the test sees it on its next query.
  })
  await client.connect()
  open.add(client)
  return client
}

export async function closeClients(): Promise<void> {
  const all = [...open]
  open.clear()
  await Promise.all(all.map((c) => c.end().catch(() => undefined)))
}

/** A new, migrated schema with a unique name. */
export async function freshSchema(client: pg.Client, faults: readonly ClaimFault[] = []): Promise<string> {
  const schema = `t_${randomBytes(6).toString('hex')}`
  await migrate(client, schema)
  if (faults.length > 0) await client.query(functionsSql(schema, faults))
  return schema
}

/** Waits until `pid`'s backend waits on a heavyweight lock (a claim queued behind a gate or row). */
export async function waitUntilBlocked(observer: pg.Client, pid: number, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs
  for (;;) {
    const res = await observer.query<{ w: string | null }>('SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1', [pid])
    if (res.rows[0]?.w === 'Lock') return
    if (Date.now() > deadline) throw new Error(`backend ${pid} never blocked on a lock`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Waits until backend `pid` has exited. */
export async function waitBackendGone(observer: pg.Client, pid: number, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs
  for (;;) {
    const res = await observer.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])
    if (res.rows.length === 0) return
    if (Date.now() > deadline) throw new Error(`backend ${pid} did not exit`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

let bundleDir: string | null = null

/**
 * lib/lease/postgres/{schema,calls,pooler}.ts bundled to one ESM file for child processes (which
 * run plain node). Built once per test file; removed by removeBundle().
 */
export function pgBundle(): string {
  if (!bundleDir) bundleDir = mkdtempSync(join(tmpdir(), 'proclease-pg-bundle-'))
  const out = join(bundleDir, 'pg-calls.mjs')
  buildSync({
    stdin: {
      contents: `export * from './lib/lease/postgres/schema.ts'; export * from './lib/lease/postgres/calls.ts'; export * from './lib/lease/postgres/pooler.ts'`,
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outfile: out,
    logLevel: 'error',
  })
  return out
}

export function removeBundle(): void {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true })
  bundleDir = null
}

export const AGENT = join(ROOT, 'test', 'lease', 'postgres', 'fixtures', 'pg-agent.mjs')

/**
 * For a test file's stores: registers the cleanup (children, then the stores it tracked, then the
 * pooled admin clients) and returns `track`, which registers a store to close after each test.
 */
export function storesClosedAfterEach(): <S extends { close(): Promise<void> }>(store: S) => S {
  const stores: Array<{ close(): Promise<void> }> = []
  afterEach(async () => {
    await cleanupLeases()
    for (const s of stores.splice(0)) await s.close()
    await closeClients()
  })
  afterAll(removeLeaseLib)
  return (store) => {
    stores.push(store)
    return store
  }
}

/**
 * Polls (backing off to 50 ms) until `cond` holds; throws after `maxMs`. For state that only
 * inspection or pg_locks shows (a waiter in the queue, a backend in a lock wait).
 */
export async function pollUntil(what: string, cond: () => Promise<boolean>, maxMs = 20_000): Promise<void> {
  const end = performance.now() + maxMs
  let pause = 1
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, pause))
    pause = Math.min(pause * 2, 50)
  }
}
