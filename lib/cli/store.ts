// Which store a command works on: the file store under a lock root (the default), or a PostgreSQL
// database named by `--store URL` or, when neither --store nor --root is given, by the
// PROCLEASE_STORE environment variable. The CLI reads its own configuration from the environment;
// the library never does. Connection strings carry passwords: anything that echoes one goes
// through maskUrl, and server error text through redact.
import { LeaseError } from '../errors.js'
import { PostgresStore } from '../lease/postgres/index.js'
import type { LeaseStore } from '../lease/store.js'
import { EXIT, type Io, type Parsed, UsageError, optionalString, reportError } from './common.js'

export type PostgresChoice = Extract<StoreChoice, { kind: 'postgres' }>

/** The environment variable naming the default store (a postgres:// URL). */
export const STORE_ENV = 'PROCLEASE_STORE'

/** The options every store-using command takes, for parse(). */
export const STORE_OPTIONS = {
  store: { type: 'string' },
  ttl: { type: 'string' },
  schema: { type: 'string' },
} as const

const STORE_HELP_LINES: Array<[string, string[]]> = [
  ['--store URL', ['keep holds in a PostgreSQL database, across hosts: a', 'postgres:// or postgresql:// connection string (default:', `$${STORE_ENV} unless --root is given); excludes --root`]],
  ['--ttl SECONDS', ['PostgreSQL store: how long a hold outlives a holder that', 'stopped renewing it (default 15, at least 1)']],
  ['--schema NAME', ["PostgreSQL store: the schema of proclease's tables", '(default proclease)']],
]

/** The help lines for STORE_OPTIONS, descriptions starting at `column`, as in each command's help. */
export function storeHelp(column: number): string {
  const out: string[] = []
  for (const [name, lines] of STORE_HELP_LINES) {
    lines.forEach((line, i) => {
      const head = i === 0 ? `  ${name}`.padEnd(column - 1) : ''.padEnd(column - 1)
      out.push(`${head} ${line}`)
    })
  }
  return out.join('\n')
}

export type StoreChoice =
  | { kind: 'file'; lockRoot: string | undefined }
  | {
      kind: 'postgres'
      url: string
      /** The URL as it may be shown: the password masked. */
      shown: string
      /** Where the URL came from, for messages. */
      from: '--store' | typeof STORE_ENV
      schema: string | undefined
      ttlMs: number | undefined
    }

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i
const MAX_TTL_S = 2_147_483 // ttlMs is an int4 on the server

/**
 * The store the options name. `--store` and `--root` exclude each other; `--root` alone selects
 * the file store even when PROCLEASE_STORE is set (the explicit option wins over the default).
 */
export function chooseStore(values: Parsed['values'], command: string, env: NodeJS.ProcessEnv = process.env): StoreChoice {
  const fromOption = optionalString(values, 'store', command)
  const root = optionalString(values, 'root', command)
  const ttl = optionalString(values, 'ttl', command)
  const schema = optionalString(values, 'schema', command)
  if (fromOption !== undefined && root !== undefined) {
    throw new UsageError('--store and --root exclude each other (a lock root belongs to the file store)', command)
  }
  const fromEnv = env[STORE_ENV]
  const url = fromOption ?? (root === undefined && fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined)
  if (url === undefined) {
    const only = ttl !== undefined ? '--ttl' : schema !== undefined ? '--schema' : null
    if (only !== null) throw new UsageError(`${only} applies to a PostgreSQL store only (--store URL or ${STORE_ENV})`, command)
    return { kind: 'file', lockRoot: root }
  }
  const from = fromOption !== undefined ? '--store' : STORE_ENV
  if (!POSTGRES_URL.test(url)) {
    // Never echo it: a malformed URL may still carry a password.
    throw new UsageError(`${from} must be a postgres:// or postgresql:// connection string`, command)
  }
  return { kind: 'postgres', url, shown: maskUrl(url), from, schema, ttlMs: ttl === undefined ? undefined : parseTtl(ttl, command) }
}

function parseTtl(text: string, command: string): number {
  if (!/^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/.test(text) || Number(text) < 1 || Number(text) > MAX_TTL_S) {
    throw new UsageError(`--ttl must be a number of seconds from 1 to ${MAX_TTL_S}, got ${JSON.stringify(text)}`, command)
  }
  return Math.round(Number(text) * 1000)
}

/**
 * Where the password of the URL's user-info part is: [start, end), or null when it has none. The
 * user-info ends at the last `@` before the query or fragment, so a password with a raw `@` or
 * `/` in it is found whole.
 */
function passwordSpan(url: string): [number, number] | null {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)
  if (!scheme) return null
  const start = scheme[0].length
  let queryAt = url.length
  for (const c of ['?', '#']) {
    const i = url.indexOf(c, start)
    if (i !== -1 && i < queryAt) queryAt = i
  }
  const at = url.lastIndexOf('@', queryAt - 1)
  const colon = at >= start ? url.slice(start, at).indexOf(':') : -1
  return colon === -1 ? null : [start + colon + 1, at]
}

const QUERY_PASSWORD = /([?&]password=)([^&#]*)/gi

/** The URL with its password replaced by `***`, in the user-info part and in a `password=` query parameter. */
export function maskUrl(url: string): string {
  const span = passwordSpan(url)
  const out = span === null ? url : `${url.slice(0, span[0])}***${url.slice(span[1])}`
  return out.replace(QUERY_PASSWORD, '$1***')
}

/** Every form of the URL's password that server or driver text could repeat, longest first. */
function secretsOf(url: string): string[] {
  const out = new Set<string>()
  const span = passwordSpan(url)
  if (span !== null) out.add(url.slice(span[0], span[1]))
  for (const m of url.matchAll(QUERY_PASSWORD)) out.add(m[2] as string)
  for (const s of [...out]) {
    try {
      out.add(decodeURIComponent(s))
    } catch {
      // Not percent-encoded text: the raw form is already listed.
    }
  }
  return [...out].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)
}

/** Replaces the URL (with its password masked) and every form of its password in `text`. */
export function redactor(url: string): (text: string) => string {
  const secrets = secretsOf(url)
  const shown = maskUrl(url)
  return (text) => {
    let out = text.split(url).join(shown)
    for (const s of secrets) out = out.split(s).join('***')
    return out
  }
}

/** A one-line description of the store, for messages. */
export function describeStore(choice: PostgresChoice): string {
  return `the PostgreSQL store ${choice.shown} (schema ${choice.schema ?? 'proclease'})`
}

/** Opens the PostgreSQL store a choice names. Connects lazily, on first use. */
export function openStore(choice: PostgresChoice): LeaseStore {
  return new PostgresStore({
    connectionString: choice.url,
    ...(choice.schema !== undefined ? { schema: choice.schema } : {}),
    ...(choice.ttlMs !== undefined ? { ttlMs: choice.ttlMs } : {}),
  })
}

/**
 * Reports an error of a command on the PostgreSQL store: server and driver text is redacted, and
 * an outage or an unsupported server names the store (masked). Exit status as reportError.
 */
export function reportStoreError(err: unknown, io: Io, command: string, choice: PostgresChoice): number {
  const redact = redactor(choice.url)
  if (err instanceof LeaseError) {
    const message =
      err.code === 'store_unavailable' || err.code === 'store_unsupported' ? `cannot use ${describeStore(choice)}: ${redact(err.message)}` : redact(err.message)
    return reportError(new LeaseError(err.code, message), io, command)
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    // The schema's own refusals (a schema newer than this proclease, a corrupt version table).
    const message = err.name === 'PostgresSchemaError' ? `cannot use ${describeStore(choice)}: ${redact(err.message)}` : redact(err.message)
    return reportError(Object.assign(new Error(message), { code }), io, command)
  }
  return reportError(redact(String(err)), io, command)
}

/** Closes a store, reporting (not throwing) a failure: a command's own outcome comes first. */
export async function closeStore(store: LeaseStore, io: Io, command: string, choice: PostgresChoice): Promise<number | null> {
  try {
    await store.close()
    return null
  } catch (err) {
    reportStoreError(err, io, command, choice)
    return EXIT.SOFTWARE
  }
}

/**
 * Runs a command's work on the store a choice names: null for the file store; for PostgreSQL a
 * store opened here and closed when the work is done, with its errors reported redacted.
 */
export async function withStore(choice: StoreChoice, io: Io, command: string, work: (store: LeaseStore | null) => Promise<number>): Promise<number> {
  if (choice.kind === 'file') return work(null)
  let store: LeaseStore
  try {
    store = openStore(choice)
  } catch (err) {
    return reportStoreError(err, io, command, choice)
  }
  try {
    return await work(store)
  } catch (err) {
    return reportStoreError(err, io, command, choice)
  } finally {
    await closeStore(store, io, command, choice)
  }
}
