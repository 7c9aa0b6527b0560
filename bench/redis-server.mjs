#!/usr/bin/env node
// A throwaway redis-server for the lease benchmark: unix socket only (no TCP port), no
// persistence, in a directory of its own. Redis comes from Debian; when it is missing this says
// exactly what to run instead of installing anything itself.
//
//   node bench/redis-server.mjs          starts one, prints { socket, pid, version }, stops on Ctrl-C
//
// Clean-up: the server runs under a small sh guardian reading a pipe held open by this process;
// when this process ends in any way, SIGKILL included, the guardian stops the server and removes
// its directory.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const START_LIMIT_MS = 10_000
export const INSTALL_HINT = 'apt-get update && apt-get install -y redis-server'

/** The installed redis-server's version line; throws with the install command when it is missing. */
export function redisServerVersion() {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (r.error && /** @type {NodeJS.ErrnoException} */ (r.error).code === 'ENOENT') {
    throw Object.assign(new Error(`redis-server is not installed; on Debian or Ubuntu, as root: ${INSTALL_HINT}`), { code: 'ENOREDIS' })
  }
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`redis-server --version failed (${r.status ?? r.signal}): ${r.stderr}`)
  return r.stdout.trim()
}

// The server writes nothing to disk and listens on no TCP port. `"$@"` keeps the arguments intact.
const GUARD_SCRIPT = `
dir=$1
shift
redis-server "$@" &
pid=$!
read -r line
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
`

function ping(socket) {
  return new Promise((resolve) => {
    const s = connect(socket)
    let buf = ''
    s.on('data', (d) => {
      buf += d
      if (buf.includes('\r\n')) {
        s.destroy()
        resolve(buf.startsWith('+PONG'))
      }
    })
    s.on('error', () => resolve(false))
    s.on('connect', () => s.write('PING\r\n'))
  })
}

/**
 * Starts a redis-server on a unix socket in a new temporary directory. Resolves to
 * { socket, dir, version, stop() } once it answers PING.
 */
export async function startRedis() {
  const version = redisServerVersion()
  const dir = mkdtempSync(join(tmpdir(), 'proclease-redis-'))
  const socket = join(dir, 'redis.sock')
  const args = ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', join(dir, 'redis.log')]
  const guard = spawn('sh', ['-c', GUARD_SCRIPT, 'proclease-redis-guard', dir, ...args], { stdio: ['pipe', 'ignore', 'inherit'] })
  guard.stdin.on('error', () => {})
  const exited = new Promise((resolve) => guard.once('exit', resolve))
  let gone = false
  void exited.then(() => {
    gone = true
  })
  const stop = async () => {
    guard.stdin.end('stop\n')
    await exited
    rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + START_LIMIT_MS
  while (!(await ping(socket))) {
    if (gone || Date.now() > deadline) {
      await stop()
      throw new Error(`redis-server did not answer on ${socket} within ${START_LIMIT_MS} ms`)
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  return { socket, dir, version, stop }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await startRedis()
  process.stdout.write(`${JSON.stringify({ socket: r.socket, version: r.version })}\n`)
  const end = () => void r.stop().then(() => process.exit(0))
  process.on('SIGINT', end)
  process.on('SIGTERM', end)
}
