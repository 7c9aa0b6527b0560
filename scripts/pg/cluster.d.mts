// Types for cluster.mjs (plain JS so that developers and CI run it without a build).
export interface Cluster {
  dir: string
  dataDir: string
  socketDir: string
  port: number
  connectionString: string
  /** With start({ listen }): postgresql://postgres@ADDRESS:PORT/postgres */
  tcpConnectionString?: string
  pid: number
  timings?: { initMs: number; launchMs: number }
  settings?: Record<string, string>
}
export type StopMode = 'smart' | 'fast' | 'immediate'
export const PG_BIN: string
export const PORT: number
export function serverUser(): { name: string | null; uid: number; gid: number }
export function readPostmasterPid(dataDir: string): { pid: number; status: string } | null
export interface Listen {
  /** An IPv4 address of this host to listen on besides the unix socket (e.g. a veth end). */
  address: string
  /** IPv4 CIDR of the clients trusted on it (e.g. "10.231.7.2/32"). */
  clients: string
}
export function start(opts?: { dir?: string; guard?: boolean; settings?: Record<string, string>; listen?: Listen }): Promise<Cluster>
export function load(dir: string): Cluster
export function stop(cluster: Cluster | string, opts?: { mode?: StopMode; keep?: boolean }): Promise<void>
export function restart(cluster: Cluster, opts?: { mode?: 'fast' | 'immediate' }): Promise<Cluster>
export function serverPids(cluster: Cluster): number[]
export function pause(cluster: Cluster): void
export function resume(cluster: Cluster): void
