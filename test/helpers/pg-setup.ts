// Vitest globalSetup: one throwaway PostgreSQL cluster for the whole run. Its connection string
// reaches the test files through provide/inject. A server that cannot be started or reached fails
// the run: PostgreSQL tests never skip.
import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { type Cluster, start, stop } from '../../scripts/pg/cluster.mjs'

declare module 'vitest' {
  export interface ProvidedContext {
    pgConnectionString: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let cluster: Cluster
  try {
    cluster = await start()
  } catch (err) {
    throw new Error(`could not start the test PostgreSQL server: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  try {
    const client = new pg.Client({ connectionString: cluster.connectionString })
    await client.connect()
    try {
      const res = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)
      const version = Number(res.rows[0]?.v)
      if (!(version >= 150000)) throw new Error(`PostgreSQL 15 or later needed, server is ${String(res.rows[0]?.v)}`)
    } finally {
      await client.end()
    }
  } catch (err) {
    await stop(cluster, { mode: 'immediate' })
    throw err
  }
  project.provide('pgConnectionString', cluster.connectionString)
  return async () => {
    await stop(cluster, { mode: 'fast' })
  }
}
