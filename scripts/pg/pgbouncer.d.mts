import type { Cluster } from './cluster.mjs'
export const PGBOUNCER: string
export interface PgBouncer {
  dir: string
  pid: number
  mode: 'transaction' | 'session'
  connectionString: string
  stop(): Promise<void>
}
export function startPgBouncer(cluster: Cluster, opts?: { mode?: 'transaction' | 'session' }): Promise<PgBouncer>
