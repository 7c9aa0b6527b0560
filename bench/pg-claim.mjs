// PostgreSQL store, server half: cluster start/stop times, server-side time of one claim, and
// uncontended claim+release round trips per second on one connection. Reports, asserts nothing.
// Usage: node bench/pg-claim.mjs [--starts 5] [--explains 200] [--seconds 2]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildSync } from 'esbuild'
import pg from 'pg'
import { start, stop } from '../scripts/pg/cluster.mjs'

const { values } = parseArgs({
  options: {
    starts: { type: 'string', default: '5' },
    explains: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '2' },
  },
})
const root = new URL('..', import.meta.url).pathname
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]
const fmt = (ms) => `${ms.toFixed(ms >= 10 ? 0 : 2)} ms`

// The server-call modules are TypeScript: bundle them for plain node.
const tmp = mkdtempSync(join(tmpdir(), 'proclease-pg-bench-'))
buildSync({
  stdin: {
    contents: `export * from './lib/lease/postgres/schema.ts'; export * from './lib/lease/postgres/calls.ts'`,
    resolveDir: root,
    loader: 'ts',
  },
  bundle: true,
  format: 'esm',
  platform: 'node',
  outfile: join(tmp, 'calls.mjs'),
  logLevel: 'error',
})
const calls = await import(join(tmp, 'calls.mjs'))

try {
  // 1. Cluster start (template copy + launch) and stop.
  const starts = []
  const stops = []
  let cluster
  for (let i = 0; i < Number(values.starts); i++) {
    const t0 = performance.now()
    const c = await start()
    starts.push(performance.now() - t0)
    if (i === Number(values.starts) - 1) {
      cluster = c
      break
    }
    const t1 = performance.now()
    await stop(c)
    stops.push(performance.now() - t1)
  }
  console.log(`cluster start: median ${fmt(median(starts))} (min ${fmt(Math.min(...starts))}, max ${fmt(Math.max(...starts))}, n=${starts.length})`)
  console.log(`cluster stop (fast): median ${fmt(median(stops))} (n=${stops.length})`)

  const client = new pg.Client({ connectionString: cluster.connectionString })
  await client.connect()
  const schema = 'bench'
  await calls.migrate(client, schema)
  const call = { key: 'bench', limit: 1, ttlMs: 15_000, witness: 'session', lockTimeoutMs: 5000, holder: { pid: process.pid, hostname: 'h' } }

  // 2. Server-side time of one claim (EXPLAIN ANALYZE's execution time), each followed by a release.
  const exec = []
  for (let i = 0; i < Number(values.explains); i++) {
    const r = await client.query(
      `EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM "${schema}".claim($1, $2, $3, $4, '{}'::uuid[], '{}'::bigint[], $5::jsonb, '{}'::jsonb, $6)`,
      [call.key, call.limit, call.ttlMs, call.witness, JSON.stringify(call.holder), call.lockTimeoutMs],
    )
    exec.push(r.rows[0]['QUERY PLAN'][0]['Execution Time'])
    const held = await calls.inspect(client, schema, call.key)
    for (const h of held.holds) await calls.release(client, schema, call.key, h.token, h.lock, 5000)
  }
  console.log(`claim, server side (EXPLAIN ANALYZE): median ${fmt(median(exec))}, p90 ${fmt(pct(exec, 0.9))} (n=${exec.length})`)

  // 3. Uncontended claim + release on one connection.
  const until = performance.now() + Number(values.seconds) * 1000
  let n = 0
  const rtt = []
  while (performance.now() < until) {
    const t0 = performance.now()
    const g = await calls.claim(client, schema, call)
    if (g.outcome !== 'granted') throw new Error('uncontended claim was not granted')
    await calls.release(client, schema, call.key, g.token, g.lock, 5000)
    rtt.push(performance.now() - t0)
    n++
  }
  console.log(`uncontended claim+release, one connection: ${(n / Number(values.seconds)).toFixed(0)}/s (median pair ${fmt(median(rtt))}, p90 ${fmt(pct(rtt, 0.9))})`)
  await client.end()
  await stop(cluster)
} finally {
  rmSync(tmp, { recursive: true, force: true })
}
