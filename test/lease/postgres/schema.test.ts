// migrate(): first use from many processes at once, idempotence, version guard, name checks.
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { PostgresSchemaError, SCHEMA_VERSION, migrate, quoteSchema } from '../../../lib/lease/postgres/schema.js'
import { Child, killAll } from '../../helpers/children.js'
import { AGENT, closeClients, connect, connectionString, pgBundle, removeBundle } from '../../helpers/pg.js'

afterEach(async () => {
  await killAll()
  await closeClients()
})
afterAll(removeBundle)

function newName(): string {
  return `m_${randomBytes(6).toString('hex')}`
}

async function count(c: pg.Client, sql: string, values: unknown[] = []): Promise<number> {
  const r = await c.query<{ n: number }>(sql, values)
  return r.rows[0]?.n ?? -1
}

describe('concurrent first use', () => {
  // Six processes migrate the same new schema at once. To make the race certain rather than
  // likely, the test holds an uncommitted CREATE SCHEMA of that name until all six are blocked
  // behind it, then rolls it back: they all hit the empty schema together.
  async function race(options: { unserialized?: boolean }): Promise<{ ok: number; failed: string[]; migrations: number }> {
    const blocker = await connect()
    const observer = await connect()
    const schema = newName()
    const app = `migrate_${schema}`
    await blocker.query('BEGIN')
    await blocker.query(`CREATE SCHEMA ${quoteSchema(schema)}`)
    const bundle = pgBundle()
    const cs = `${connectionString()}&application_name=${app}`
    const agents = Array.from(
      { length: 6 },
      () => new Child(process.execPath, [AGENT, bundle, cs, schema, JSON.stringify({ op: 'migrate', options })]),
    )
    const deadline = Date.now() + 30_000
    for (;;) {
      const waiting = await count(
        observer,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
        [app],
      )
      if (waiting === 6) break
      if (Date.now() > deadline) throw new Error(`only ${waiting} of 6 migrations blocked`)
      await new Promise((r) => setTimeout(r, 5))
    }
    await blocker.query('ROLLBACK')
    const failed: string[] = []
    const outcomes = await Promise.all(
      agents.map(async (a) => {
        await a.nextLine().catch((err: unknown) => failed.push(String(err)))
        const { code } = await a.exited
        return code
      }),
    )
    const exists = await count(observer, 'SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [schema])
    const migrations = exists === 1 && (await count(observer, `SELECT count(to_regclass($1))::int AS n`, [`${quoteSchema(schema)}.migrations`])) === 1
      ? await count(observer, `SELECT count(*)::int AS n FROM ${quoteSchema(schema)}.migrations`)
      : 0
    return { ok: outcomes.filter((c) => c === 0).length, failed, migrations }
  }

  it('six processes migrating a new schema at once all succeed, and it is created once', async () => {
    const r = await race({})
    expect(r.failed).toEqual([])
    expect(r.ok).toBe(6)
    expect(r.migrations).toBe(SCHEMA_VERSION)
  })

  it('negative control: without the migration lock, concurrent first uses fail', async () => {
    const r = await race({ unserialized: true })
    expect(r.ok).toBeLessThan(6)
  })
})

describe('migrate', () => {
  it('is idempotent and leaves the client outside a transaction', async () => {
    const c = await connect()
    const schema = newName()
    await migrate(c, schema)
    await migrate(c, schema)
    await migrate(c, schema)
    expect(await count(c, `SELECT count(*)::int AS n FROM ${quoteSchema(schema)}.migrations`)).toBe(SCHEMA_VERSION)
    expect(await count(c, `SELECT version AS n FROM ${quoteSchema(schema)}.schema_version`)).toBe(SCHEMA_VERSION)
    // Outside a transaction: a failing statement does not poison the next one.
    await expect(c.query('SELECT 1/0')).rejects.toThrow()
    await expect(c.query('SELECT 1')).resolves.toBeTruthy()
  })

  it('upgrades a version 1 schema in place: its gates, holds and fences are kept', async () => {
    const c = await connect()
    const schema = newName()
    const s = quoteSchema(schema)
    await migrate(c, schema, { toVersion: 1 })
    expect(await count(c, `SELECT version AS n FROM ${s}.schema_version`)).toBe(1)
    // A version 1 hold of a holder that can no longer be judged (witness none): it must still count.
    await c.query(`INSERT INTO ${s}.gates (key) VALUES ('old')`)
    await c.query(`SELECT setval('${s}.fences', 41)`)
    await c.query(
      `INSERT INTO ${s}.holds (key, slot, token, fence, lock_class, lock_object, witness, ttl_ms, server_started, session_pid,
                               acquired_at, renewed_at)
       VALUES ('old', 0, gen_random_uuid(), 41, 1, 41, 'none', 600000, pg_postmaster_start_time(), 1, now(), now())`,
    )
    await migrate(c, schema)
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(2)
    expect(await count(c, `SELECT version AS n FROM ${s}.schema_version`)).toBe(SCHEMA_VERSION)
    expect(await count(c, `SELECT count(*)::int AS n FROM ${s}.migrations`)).toBe(SCHEMA_VERSION)
    expect(await count(c, `SELECT weight AS n FROM ${s}.holds WHERE key = 'old'`)).toBe(1)
    const claim = async (limit: number): Promise<{ outcome: string; fence: string | null; used: number }> => {
      const r = await c.query<{ outcome: string; fence: string | null; used: number }>(
        `SELECT outcome, fence::text AS fence, used FROM ${s}.claim('old', $1, 1, 60000, 'none', '{}', '{}', '{}', '{}', 1000, true, false, NULL)`,
        [limit],
      )
      return r.rows[0] as { outcome: string; fence: string | null; used: number }
    }
    expect(await claim(1)).toMatchObject({ outcome: 'busy', used: 1 })
    const granted = await claim(2)
    expect(granted).toMatchObject({ outcome: 'granted', used: 2 })
    expect(Number(granted.fence)).toBeGreaterThan(41)
  })

  it('refuses a schema stored by a newer release, changing nothing', async () => {
    const c = await connect()
    const schema = newName()
    await migrate(c, schema)
    await c.query(`UPDATE ${quoteSchema(schema)}.schema_version SET version = $1`, [SCHEMA_VERSION + 1])
    const err = await migrate(c, schema).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PostgresSchemaError)
    expect(err).toMatchObject({ code: 'schema_too_new' })
    expect(String((err as Error).message)).toMatch(/newer than this proclease/)
    expect(await count(c, `SELECT version AS n FROM ${quoteSchema(schema)}.schema_version`)).toBe(SCHEMA_VERSION + 1)
  })

  it('reports a schema whose version row is missing as corrupt', async () => {
    const c = await connect()
    const schema = newName()
    await migrate(c, schema)
    await c.query(`DELETE FROM ${quoteSchema(schema)}.schema_version`)
    await expect(migrate(c, schema)).rejects.toMatchObject({ code: 'schema_corrupt' })
  })

  it('validates schema names before any SQL is built', () => {
    for (const bad of ['', 'Proclease', 'a-b', '1abc', 'pg_toast', 'a'.repeat(64), 'x"; DROP SCHEMA public; --', 'é']) {
      expect(() => quoteSchema(bad), bad).toThrow(PostgresSchemaError)
    }
    expect(quoteSchema('proclease')).toBe('"proclease"')
    expect(quoteSchema(`_${'a'.repeat(62)}`)).toBe(`"_${'a'.repeat(62)}"`)
  })

  it('bounds its wait for a concurrent migration with lock_timeout', async () => {
    const holder = await connect()
    const c = await connect()
    const schema = newName()
    await holder.query('BEGIN')
    await holder.query(`SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, [0x70636c65, schema])
    await expect(migrate(c, schema, { lockTimeoutMs: 100 })).rejects.toMatchObject({ code: '55P03' })
    await holder.query('ROLLBACK')
    await migrate(c, schema)
  })
})
