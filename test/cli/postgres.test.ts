// The CLI on the PostgreSQL store (--store URL / PROCLEASE_STORE), against the shared test server:
// `run` keeps the hold in the wrapper (no fd 3, released when the command ends, freed by the
// session witness when the wrapper is killed, a lost hold announced at once and the command
// signalled), `status` and `reclaim` on the store in the file store's JSON schema, typed errors,
// and passwords never printed. Each test gets a fresh schema (--schema).
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { closeClients, connect, connectionString, freshSchema, waitBackendGone } from '../helpers/pg.js'
import { cli, cleanup, finish, runCli } from './harness.js'
import { PRINT_ENV, envOf } from './hold-env.js'

let admin: pg.Client
let schema = ''
let key = ''

beforeAll(async () => {
  admin = await connect()
})
beforeEach(async () => {
  schema = await freshSchema(admin)
  key = `k-${randomBytes(4).toString('hex')}`
})
afterEach(cleanup)
afterAll(async () => {
  await closeClients()
  await finish()
})

/** The test server's URL with a password in it (the server trusts local users: it is ignored). */
function urlWithPassword(user = 'postgres', password = 's3cret'): string {
  return connectionString().replace('postgresql://postgres@', `postgresql://${user}:${password}@`)
}

function store(): string[] {
  return ['--store', connectionString(), '--schema', schema]
}

/** A command for `run`: prints "started <pid>"; exits with `code` when its stdin ends; on SIGTERM prints "got SIGTERM" and exits 7. */
function command(code = 0): string[] {
  const script = `
process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(7) });
console.log('started ' + process.pid);
process.stdin.on('end', () => process.exit(${code}));
process.stdin.resume();
`
  return [process.execPath, '-e', script]
}

/** A command that stays until signalled (its stdin closes when a killed wrapper's pipe does). */
function lingering(): string[] {
  return [process.execPath, '-e', "process.on('SIGTERM', () => process.exit(7)); console.log('started ' + process.pid); setInterval(() => {}, 1 << 30)"]
}

async function holderBackend(): Promise<number> {
  const res = await admin.query<{ session_pid: number }>(`SELECT session_pid FROM "${schema}".holds WHERE key = $1`, [key])
  const pid = res.rows[0]?.session_pid
  if (pid === undefined) throw new Error('no hold row')
  return pid
}

interface StatusJson {
  version: number
  keys: Array<{ key: string | null; limit: number | null; active: number; holders: Array<Record<string, unknown>> }>
}

async function statusJson(...extra: string[]): Promise<StatusJson> {
  const r = await runCli(['status', ...store(), '--json', ...extra])
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as StatusJson
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('run --store postgres://…', () => {
  it('holds the slot in the wrapper (no fd 3) while the command runs, and releases it when the command ends', async () => {
    // What descriptor 3 is for a command started without proclease (as the wrapper is started by
    // this test): under the wrapper the command gets the same, not a lock descriptor.
    const fd3 = 'readlink /proc/$$/fd/3 2>/dev/null || echo no-fd3'
    const baseline = spawnSync('sh', ['-c', fd3], { stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' }).stdout
    const a = cli(['run', '--key', key, ...store(), '--', 'sh', '-c', `${fd3}; echo started $$; read x; exit 3`])
    expect(`${await a.nextLine()}\n`).toBe(baseline)
    await a.waitLine(/^started /)
    const st = await statusJson('--verbose')
    expect(st.keys).toHaveLength(1)
    expect(st.keys[0]).toMatchObject({ key, active: 1, holders: [{ slot: 0, state: 'alive', pid: a.pid }] })
    // The slot is taken: a second run that will not wait is busy (75).
    const b = await runCli(['run', '--key', key, ...store(), '--wait', '0', '--', 'true'])
    expect(b.code).toBe(75)
    expect(b.stderr).toMatch(/no slot of ".*" freed within 0s \(1\/1 held\) \(lease_busy\)/)
    a.proc.stdin?.end()
    const r = await a.closed
    expect(r.code).toBe(3)
    expect(r.stderr).toBe('')
    expect((await statusJson()).keys[0]).toMatchObject({ key, active: 0, holders: [] })
  })

  it('gives the command its hold in the environment: key, slot, fence, weight; no PROCLEASE_RECOVERED', async () => {
    const r = await runCli(['run', '--key', key, ...store(), '--verbose', '-c', PRINT_ENV], { env: { ...process.env, PROCLEASE_RECOVERED: 'stale' } })
    expect(r.code, r.stderr).toBe(0)
    const fence = /holding slot 0 of ".*" \(fence (\d+)\)/.exec(r.stderr)?.[1]
    expect(fence).toBeDefined()
    expect(envOf(r.stdout)).toEqual({ KEY: key, SLOT: '0', FENCE: fence, WEIGHT: '1', RECOVERED: undefined })
  })

  it('takes the store from PROCLEASE_STORE when neither --store nor --root is given', async () => {
    const env = { ...process.env, PROCLEASE_STORE: connectionString() }
    const a = cli(['run', '--key', key, '--schema', schema, '--', ...command()], { env })
    await a.waitLine(/^started /)
    expect((await statusJson()).keys[0]).toMatchObject({ key, active: 1 })
    const st = await runCli(['status', '--schema', schema, '--key', key], { env })
    expect(st.stdout).toBe(`${JSON.stringify(key)}  1/? held\n  slot 0   alive\n`)
    a.proc.stdin?.end()
    expect((await a.closed).code).toBe(0)
  })

  it('a wrapper killed with SIGKILL frees the slot through its session, long before the TTL; the command may run on', async () => {
    const a = cli(['run', '--key', key, ...store(), '--ttl', '3600', '--', ...lingering()])
    await a.waitLine(/^started /)
    const commandPid = a.commandPid as number
    const b = cli(['run', '--key', key, ...store(), '--wait', '120', '--', process.execPath, '-e', "console.log('B ran')"])
    a.proc.kill('SIGKILL')
    // An hour-long TTL: only the session witness can have freed the slot.
    const rb = await b.closed
    expect(rb.stdout).toBe('B ran\n')
    expect(rb.code).toBe(0)
    // As documented: the wrapper held the slot, not the command, which still runs.
    expect(alive(commandPid)).toBe(true)
    process.kill(commandPid, 'SIGKILL')
  })

  it('a lost connection is announced at once and the command gets SIGTERM (--on-lost kill, the default)', async () => {
    const a = cli(['run', '--key', key, ...store(), '--', ...command()])
    await a.waitLine(/^started /)
    await admin.query('SELECT pg_terminate_backend($1)', [await holderBackend()])
    const r = await a.closed
    expect(r.stdout).toContain('got SIGTERM')
    expect(r.code).toBe(7)
    expect(r.stderr).toMatch(
      new RegExp(`lost the hold on slot 0 of "${key}" while the command ran: the connection to the PostgreSQL server was lost \\(connection_lost\\); sending SIGTERM to the command \\(--on-lost kill\\)`),
    )
  })

  it('with --on-lost warn the command runs on after a lost connection, and its exit status is the wrapper’s', async () => {
    const a = cli(['run', '--key', key, ...store(), '--on-lost', 'warn', '--', ...command(5)])
    await a.waitLine(/^started /)
    await admin.query('SELECT pg_terminate_backend($1)', [await holderBackend()])
    await a.waitStderr(/connection_lost\); the command runs on unguarded \(--on-lost warn\)/)
    expect(alive(a.commandPid as number)).toBe(true)
    a.proc.stdin?.end()
    const r = await a.closed
    expect(r.stdout).not.toContain('got SIGTERM')
    expect(r.code).toBe(5)
  })

  it('a wrapper stopped past its TTL loses the slot to a waiter; resumed, it says the hold expired and stops the command', async () => {
    const a = cli(['run', '--key', key, ...store(), '--ttl', '1', '--', ...command()])
    await a.waitLine(/^started /)
    a.proc.kill('SIGSTOP')
    try {
      // Granted only once the stopped holder's hold went unrenewed for a whole TTL.
      const b = await runCli(['run', '--key', key, ...store(), '--ttl', '1', '--wait', '120', '--', process.execPath, '-e', "console.log('B ran')"])
      expect(b.stdout).toBe('B ran\n')
      expect(b.code).toBe(0)
    } finally {
      a.proc.kill('SIGCONT')
    }
    const r = await a.closed
    expect(r.stderr).toMatch(new RegExp(`lost the hold on slot 0 of "${key}" while the command ran: .*\\((expired|lost)\\.*.*; sending SIGTERM to the command`))
    expect(r.stdout).toContain('got SIGTERM')
    expect(r.code).toBe(7)
  })

  it('releases the slot when the command cannot be started (127)', async () => {
    const r = await runCli(['run', '--key', key, ...store(), '--', '/nonexistent/command'])
    expect(r.code).toBe(127)
    expect((await statusJson()).keys[0]).toMatchObject({ key, active: 0 })
  })

  it('--verbose names the store with its password masked', async () => {
    const r = await runCli(['run', '--key', key, '--store', urlWithPassword(), '--schema', schema, '--verbose', '--', 'true'])
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/holding slot 0 of ".*" \(fence \d+\) in the PostgreSQL store postgresql:\/\/postgres:\*\*\*@\/postgres\?host=.* \(schema t_[0-9a-f]+\), held by this wrapper/)
    expect(r.stderr).not.toContain('s3cret')
  })
})

describe('status and reclaim --store postgres://…', () => {
  it('an empty store has no keys (text and --json)', async () => {
    expect(await statusJson()).toEqual({ version: 1, keys: [] })
    const r = await runCli(['status', ...store()])
    expect(r.stdout).toBe(`no keys in the PostgreSQL store ${connectionString()} (schema ${schema})\n`)
    expect(r.code).toBe(0)
  })

  it('reclaims the hold of a killed wrapper, in the same JSON schema as the file store', async () => {
    const a = cli(['run', '--key', key, ...store(), '--ttl', '3600', '--', ...lingering()])
    await a.waitLine(/^started /)
    const backend = await holderBackend()
    a.proc.kill('SIGKILL')
    process.kill(a.commandPid as number, 'SIGKILL')
    await waitBackendGone(admin, backend)
    const st = await statusJson('--key', key)
    expect(st).toEqual({ version: 1, keys: [{ key, limit: null, active: 0, used: 0, waiting: 0, holders: [{ slot: 0, state: 'dead', weight: 1 }] }] })
    const dry = await runCli(['reclaim', ...store(), '--key', key, '--dry-run', '--json'])
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toEqual({ version: 1, key, dryRun: true, reclaimed: [{ slot: 0 }], remaining: { key, limit: null, active: 0, used: 0, waiting: 0, holders: [{ slot: 0, state: 'dead', weight: 1 }] } })
    const r = await runCli(['reclaim', ...store(), '--key', key])
    expect(r.stdout).toBe(`${JSON.stringify(key)}: reclaimed slot 0\n${JSON.stringify(key)}  0/? held\n`)
    expect(r.code).toBe(0)
    expect(await statusJson('--key', key)).toEqual({ version: 1, keys: [{ key, limit: null, active: 0, used: 0, waiting: 0, holders: [] }] })
  })
})

describe('errors on the PostgreSQL store', () => {
  it('an unreachable server: store_unavailable, exit 70, the password masked', async () => {
    const url = 'postgresql://app:s3cret@/postgres?host=/nonexistent-proclease-dir'
    for (const args of [
      ['run', '--key', 'k', '--store', url, '--', 'true'],
      ['status', '--store', url],
      ['reclaim', '--key', 'k', '--store', url],
    ]) {
      const r = await runCli(args)
      expect(r.code).toBe(70)
      expect(r.stderr).toMatch(/^proclease: cannot use the PostgreSQL store postgresql:\/\/app:\*\*\*@\/postgres\?host=\/nonexistent-proclease-dir \(schema proclease\): .* \(store_unavailable\)\n$/)
      expect(r.stderr).not.toContain('s3cret')
    }
  })

  it('a server whose sessions default to REPEATABLE READ: store_unsupported, exit 70, the command not run', async () => {
    const role = `rr_${randomBytes(4).toString('hex')}`
    await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER`)
    await admin.query(`ALTER ROLE ${role} SET default_transaction_isolation = 'repeatable read'`)
    try {
      const r = await runCli(['run', '--key', key, '--store', urlWithPassword(role), '--schema', schema, '--', process.execPath, '-e', "console.log('ran')"])
      expect(r.code).toBe(70)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(/^proclease: cannot use the PostgreSQL store postgresql:\/\/rr_[0-9a-f]+:\*\*\*@.*READ COMMITTED.* \(store_unsupported\)\n$/)
      expect(r.stderr).not.toContain('s3cret')
    } finally {
      await admin.query(`DROP ROLE ${role}`)
    }
  })

  it('a schema from a newer proclease: store_unsupported, exit 70, the store named', async () => {
    await admin.query(`UPDATE "${schema}".schema_version SET version = 999`)
    const r = await runCli(['status', ...store()])
    expect(r.code).toBe(70)
    expect(r.stderr).toMatch(new RegExp(`^proclease: cannot use the PostgreSQL store .* \\(schema ${schema}\\): schema ${schema} is at version 999, newer than this proclease .* \\(store_unsupported\\)\n$`))
  })

  it.each([
    [['run', '--key', 'k', '--store', 'x', '--root', '/tmp/x', '--', 'true'], /--store and --root exclude each other/],
    [['status', '--store', 'mysql://u:s3cret@host/db'], /--store must be a postgres:\/\/ or postgresql:\/\/ connection string \(try: proclease status --help\)/],
    [['status', '--ttl', '5'], /--ttl applies to a PostgreSQL store only/],
    [['reclaim', '--key', 'k', '--schema', 'x'], /--schema applies to a PostgreSQL store only/],
    [['status', '--store', 'postgres://h/db', '--ttl', '0.5'], /--ttl must be a number of seconds from 1 to/],
    [['run', '--key', 'k', '--store', 'postgres://h/db', '--on-lost', 'ignore', '--', 'true'], /--on-lost must be kill or warn/],
    [['run', '--key', 'k', '--on-lost', 'warn', '--', 'true'], /--on-lost applies only where the wrapper holds the slot: a PostgreSQL store, or --no-inherit/],
    [['run', '--key', 'k', '--store', 'postgres://h/db', '--fd', '5', '--', 'true'], /--fd applies to the file store only/],
  ])('usage error: %j', async (args, message) => {
    const r = await runCli(args)
    expect(r.code).toBe(64)
    expect(r.stderr).toMatch(message)
    expect(r.stderr).not.toContain('s3cret')
  })

  it('a malformed PROCLEASE_STORE is a usage error that does not echo it; --root overrides it', async () => {
    const env = { ...process.env, PROCLEASE_STORE: 'redis://u:s3cret@h' }
    const r = await runCli(['status'], { env })
    expect(r.code).toBe(64)
    expect(r.stderr).toMatch(/PROCLEASE_STORE must be a postgres:\/\/ or postgresql:\/\/ connection string/)
    expect(r.stderr).not.toContain('s3cret')
    const root = `/tmp/proclease-cli-none-${randomBytes(4).toString('hex')}`
    const f = await runCli(['status', '--root', root], { env })
    expect(f.stdout).toBe(`no keys under ${root}\n`)
    expect(f.code).toBe(0)
  })
})

