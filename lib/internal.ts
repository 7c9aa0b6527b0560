// Internal entry point (dist/internal.js) for the CLI, tests and the chaos harness: the engine's
// building blocks, including the FileStore constructor whose test-only `faults` parameter the
// public API cannot reach. Not part of the public API; no stability promise.
import { LeaseError } from './errors.js'
import { FileStore, type FileStoreFaults } from './lease/file/index.js'
import type { LeaseStore } from './lease/store.js'
import { hostIdentity } from './probes.js'

export { FileStore } from './lease/file/index.js'
export type { FileStoreFaults, FileStoreOptions } from './lease/file/index.js'
export { acquireWith, leaseInternals, selfHolder } from './lease/engine.js'
export { normalizeOptions } from './lease/options.js'
export { storeFor } from './lease/api.js'
export { judge } from './lease/witness.js'

/** The faults a spec may ask for: plain data, so a child process can be given the same broken store. */
export type SpecFaults = Pick<
  FileStoreFaults,
  'noGate' | 'reclaimOnSuspicion' | 'overAdmit' | 'countByIndex' | 'barge' | 'sumByCount' | 'noticeTwice' | 'quietLoss' | 'leaveIgnored'
>

/** A file store under a lock root. */
export interface FileStoreSpec {
  kind: 'file'
  root: string
  allowUnsafeFilesystem?: boolean
  /**
   * false: judge holders by identity alone, as on a filesystem whose kernel locks are not trusted.
   * Done by judging with the boot-id sentinel, so the kernel witness (which speaks only for the
   * same running kernel, §3.3) never applies, whatever the filesystem: the only way to reach that
   * judgement on a local directory without a FileStore option for it.
   */
  kernelWitness?: boolean
  faults?: SpecFaults
}

/**
 * A store described as plain JSON: the conformance suite hands the same spec to child processes
 * (test/lease/fixtures/agent.mjs), which open the same store with it. One member per backend,
 * told apart by `kind`; the PostgreSQL store adds
 * `{ kind: 'postgres'; connectionString; schema; ttlMs; witness }` here and a case in openStore.
 */
export type StoreSpec = FileStoreSpec | PostgresStoreSpec

/** A PostgreSQL store; `faults` installs test-only variants of the server functions into its schema. */
export interface PostgresStoreSpec {
  kind: 'postgres'
  connectionString: string
  schema: string
  ttlMs?: number
  witness?: 'session' | 'none'
  faults?: ClaimFault[]
}

/** Test seams that are functions, so they cannot travel in a spec: pauses inside a claim. */
export interface StoreSeams {
  /** Inside a claim, after judging and counting, before anything is written (under the gate). */
  afterScan?: () => void
  /** Inside a claim, after the record is written under a temporary name, before it is published. */
  beforePublish?: () => void
}

const BOOLEAN_FAULTS = ['noGate', 'reclaimOnSuspicion', 'countByIndex', 'barge', 'sumByCount', 'noticeTwice', 'quietLoss', 'leaveIgnored'] as const
const FAULT_NAMES = [...BOOLEAN_FAULTS, 'overAdmit'] as const

function invalidSpec(why: string): LeaseError {
  return new LeaseError('invalid_argument', `store spec: ${why}`)
}

function checkFaults(faults: unknown): SpecFaults {
  if (faults === undefined) return {}
  if (faults === null || typeof faults !== 'object') throw invalidSpec('faults must be an object')
  for (const name of Object.keys(faults)) {
    if (!(FAULT_NAMES as readonly string[]).includes(name)) throw invalidSpec(`unknown fault ${JSON.stringify(name)}`)
  }
  const f = faults as SpecFaults
  for (const name of BOOLEAN_FAULTS) {
    if (f[name] !== undefined && typeof f[name] !== 'boolean') throw invalidSpec(`faults.${name} must be a boolean`)
  }
  if (f.overAdmit !== undefined && !(Number.isSafeInteger(f.overAdmit) && f.overAdmit >= 0)) throw invalidSpec('faults.overAdmit must be an integer >= 0')
  return f
}

function openFileStore(spec: FileStoreSpec, seams: StoreSeams): FileStore {
  if (typeof spec.root !== 'string' || spec.root.length === 0) throw invalidSpec('root must be a non-empty path')
  if (spec.allowUnsafeFilesystem !== undefined && typeof spec.allowUnsafeFilesystem !== 'boolean') throw invalidSpec('allowUnsafeFilesystem must be a boolean')
  if (spec.kernelWitness !== undefined && typeof spec.kernelWitness !== 'boolean') throw invalidSpec('kernelWitness must be a boolean')
  const faults: FileStoreFaults = { ...checkFaults(spec.faults), ...seams }
  const opts = { root: spec.root, allowUnsafeFilesystem: spec.allowUnsafeFilesystem === true, faults }
  if (spec.kernelWitness !== false) return new FileStore(opts)
  const host = hostIdentity()
  return new FileStore({ ...opts, classify: { host: { ...host, bootId: `unknown-${host.hostname}` } } })
}

function openPostgresStore(spec: PostgresStoreSpec): PostgresStore {
  const faults = spec.faults ?? []
  if (!Array.isArray(faults) || faults.some((f) => typeof f !== 'string')) throw invalidSpec('faults must be an array of fault names')
  const { connectionString, schema } = spec
  const opts = { connectionString, schema, ...(spec.ttlMs !== undefined ? { ttlMs: spec.ttlMs } : {}), ...(spec.witness !== undefined ? { witness: spec.witness } : {}) }
  // Installed by every process opening the spec: serialized like migrations, or concurrent
  // CREATE OR REPLACE FUNCTIONs fail with "tuple concurrently updated".
  const install = async (q: Queryable): Promise<void> => {
    await q.query('BEGIN')
    try {
      await q.query('SELECT pg_advisory_xact_lock($1::integer, hashtext($2))', [MIGRATION_LOCK_CLASS, schema])
      await q.query(functionsSql(schema, faults))
      await q.query('COMMIT')
    } catch (err) {
      await q.query('ROLLBACK').catch(() => undefined)
      throw err
    }
  }
  return new PostgresStore(opts, faults.length > 0 ? { afterMigrate: install } : {})
}

/** Opens the store a spec describes. Each call opens a new store; close it when done. */
export function openStore(spec: StoreSpec, seams: StoreSeams = {}): LeaseStore {
  if (spec === null || typeof spec !== 'object') throw invalidSpec('must be an object')
  const kind = (spec as { kind?: unknown }).kind
  switch (spec.kind) {
    case 'file':
      return openFileStore(spec, seams)
    case 'postgres':
      return openPostgresStore(spec)
    default: {
      const unknown: never = spec
      throw invalidSpec(`unknown kind ${JSON.stringify(kind)} in ${typeof unknown}`)
    }
  }
}
// The PostgreSQL schema's migration and its function text (with test-only faults), for the chaos
// harness's --store postgres runs and their negative controls.
export { functionsSql, migrate } from './lease/postgres/schema.js'
import { type ClaimFault, MIGRATION_LOCK_CLASS, functionsSql } from './lease/postgres/schema.js'
import type { Queryable } from './lease/postgres/queryable.js'
import { PostgresStore } from './lease/postgres/index.js'
