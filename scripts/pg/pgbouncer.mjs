// A throwaway PgBouncer in front of a cluster from cluster.mjs, for the pooler tests: unix socket
// only, trust auth, one server connection per pool so that clients visibly share sessions.
// PgBouncer refuses to run as root: as root it runs as the postgres user (like the server).
// Like cluster.mjs, a guardian shell stops it and removes its directory when this process ends.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { serverUser } from './cluster.mjs'

export const PGBOUNCER = '/usr/sbin/pgbouncer'
const PORT = 6432
const START_LIMIT_MS = 30_000

const GUARD_SCRIPT = `
dir=$1; pid=$2
read -r line
[ "$line" = dismiss ] && exit 0
kill -TERM "$pid" 2>/dev/null
n=0
while kill -0 "$pid" 2>/dev/null && [ -e "$dir/pgbouncer.pid" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
rm -rf "$dir"
`

function iniFor(dir, cluster, mode) {
  return `[databases]
postgres = host=${cluster.socketDir} port=${cluster.port} dbname=postgres user=postgres

[pgbouncer]
pool_mode = ${mode}
listen_addr =
listen_port = ${PORT}
unix_socket_dir = ${dir}
auth_type = trust
auth_file = ${join(dir, 'users.txt')}
pidfile = ${join(dir, 'pgbouncer.pid')}
logfile = ${join(dir, 'pgbouncer.log')}
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 50
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits,application_name
`
}

/**
 * Starts PgBouncer in `mode` (transaction | session) in front of `cluster`. Resolves to
 * { dir, pid, connectionString, stop() }.
 */
export async function startPgBouncer(cluster, { mode = 'transaction' } = {}) {
  if (!fs.existsSync(PGBOUNCER)) {
    throw new Error(`${PGBOUNCER} is missing: apt-get install pgbouncer (the pooler tests need it)`)
  }
  const user = serverUser()
  const dir = fs.mkdtempSync(join(cluster.dir, '..', 'proclease-pgb-'))
  if (process.getuid?.() === 0) fs.chownSync(dir, user.uid, user.gid)
  fs.chmodSync(dir, 0o700)
  const own = (path, text) => {
    fs.writeFileSync(path, text, { mode: 0o600 })
    if (process.getuid?.() === 0) fs.chownSync(path, user.uid, user.gid)
  }
  own(join(dir, 'users.txt'), '"postgres" ""\n')
  own(join(dir, 'pgbouncer.ini'), iniFor(dir, cluster, mode))
  const child = spawn(PGBOUNCER, [join(dir, 'pgbouncer.ini')], {
    ...(process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {}),
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore'],
  })
  let exited = null
  child.once('exit', (code, signal) => {
    exited = { code, signal }
  })
  child.unref()
  const guard = spawn('sh', ['-c', GUARD_SCRIPT, 'proclease-pgb-guard', dir, String(child.pid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  guard.unref()
  const pipe = /** @type {import('node:net').Socket} */ (/** @type {unknown} */ (guard.stdin))
  pipe.unref()
  guard.stdin.on('error', () => {})
  const socket = join(dir, `.s.PGSQL.${PORT}`)
  const deadline = Date.now() + START_LIMIT_MS
  // PgBouncer creates its socket once it listens.
  while (!fs.existsSync(socket)) {
    if (exited || Date.now() > deadline) {
      const log = fs.existsSync(join(dir, 'pgbouncer.log')) ? fs.readFileSync(join(dir, 'pgbouncer.log'), 'utf8') : '(no log)'
      guard.stdin.end('stop\n')
      throw new Error(`pgbouncer did not start (${exited ? `exit ${exited.code ?? exited.signal}` : 'timeout'}):\n${log}`)
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  const connectionString = `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}&port=${PORT}`
  return {
    dir,
    pid: child.pid,
    mode,
    connectionString,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        await gone
      }
      guard.stdin.end('dismiss\n')
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
