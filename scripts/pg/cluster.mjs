#!/usr/bin/env node
// A throwaway PostgreSQL 15 cluster for tests, CI and developers: unix socket only, durability
// off, started from a cached pristine initdb output (a copy is ~2x faster than initdb).
//
//   node scripts/pg/cluster.mjs start [--dir D]     prints { dir, socketDir, port, connectionString, pid }
//   node scripts/pg/cluster.mjs stop [--dir D] [--mode smart|fast|immediate]
//   node scripts/pg/cluster.mjs restart [--dir D] [--mode fast|immediate]
//   node scripts/pg/cluster.mjs status [--dir D]
//
// Without --dir, start makes a temporary directory and remembers it in the cache directory, and
// stop/restart/status act on the remembered one. stop removes the directory.
//
// Root cannot run postgres: as root every server binary runs as the `postgres` user (spawned
// with its uid/gid, which is what `runuser -u postgres --` does minus the PAM session), in
// directories that user owns. A non-root user runs them as itself.
//
// Clean-up: programmatic start() spawns a small guardian (sh) holding a pipe from this process;
// when this process ends in any way, SIGKILL included, the guardian stops the server
// (immediate) and removes the directory. stop() does the same in order and dismisses it.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PG_BIN = '/usr/lib/postgresql/15/bin'
export const PORT = 5432
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CACHE = join(REPO, 'node_modules', '.cache', 'proclease-pg')
// 1 MB WAL segments: the template's first segment is copied on every start (16 MB by default).
const INITDB_ARGS = ['-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--wal-segsize=1']
// Durability is worthless for a throwaway cluster; these make start, commit and shutdown cheap.
const SERVER_SETTINGS = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  wal_level: 'minimal',
  max_wal_senders: '0',
  listen_addresses: '',
  max_connections: '200',
  // Clients that vanish mid-test must not leave idle transactions holding rows forever.
  idle_in_transaction_session_timeout: '0',
}
const START_LIMIT_MS = 30_000
const STOP_LIMIT_MS = 30_000
const SIGNALS = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' }

/** Who runs the server: the postgres user when we are root, else ourselves. */
export function serverUser() {
  const uid = process.getuid?.()
  if (uid === undefined) throw new Error('cluster.mjs needs a POSIX system')
  if (uid !== 0) return { name: null, uid, gid: process.getgid?.() ?? uid }
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'))
  if (!line) throw new Error('running as root needs a "postgres" user to run the server as')
  const [, , u, g] = line.split(':')
  return { name: 'postgres', uid: Number(u), gid: Number(g) }
}

function asServerUser(user) {
  return process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {}
}

function run(cmd, args, user, what) {
  const r = spawnSync(cmd, args, { ...asServerUser(user), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (r.error) throw new Error(`${what}: ${r.error.message}`, { cause: r.error })
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`)
  return r.stdout
}

function serverVersion() {
  const out = run(join(PG_BIN, 'postgres'), ['--version'], { uid: process.getuid(), gid: process.getgid() }, 'postgres --version')
  return out.trim()
}

function makeOwnedDir(path, user) {
  fs.mkdirSync(path, { recursive: true, mode: 0o700 })
  if (process.getuid?.() === 0) fs.chownSync(path, user.uid, user.gid)
  fs.chmodSync(path, 0o700)
}

// Memory-backed when possible: copying the template onto tmpfs takes ~0.1 s where the same copy
// onto this machine's disk took 1.5 s under load. A short path: unix socket paths are limited to
// 107 bytes.
function tempBase() {
  try {
    const st = fs.statSync('/dev/shm')
    fs.accessSync('/dev/shm', fs.constants.W_OK)
    if (st.isDirectory()) return '/dev/shm'
  } catch (err) {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'EACCES')) throw err
  }
  return tmpdir()
}

function makeTempDir(user) {
  const dir = fs.mkdtempSync(join(tempBase(), 'proclease-pg-'))
  makeOwnedDir(dir, user)
  return dir
}

function removeDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true })
}

/**
 * Fills `dataDir` with a fresh cluster: a copy of the cached pristine initdb output (made on first
 * use), or initdb itself when the cache cannot be written.
 */
function initData(dataDir, user) {
  const tag = createHash('sha256')
    .update(`${serverVersion()}\0${INITDB_ARGS.join('\0')}`)
    .digest('hex')
    .slice(0, 12)
  const template = join(CACHE, `template-${user.uid}-${tag}`)
  if (!fs.existsSync(join(template, 'PG_VERSION'))) {
    if (!cacheWritable()) {
      run(join(PG_BIN, 'initdb'), ['-D', dataDir, ...INITDB_ARGS], user, 'initdb')
      return
    }
    buildTemplate(template, user)
  }
  // cp -a keeps modes (postgres insists on 0700) and, for root, the postgres ownership.
  run('cp', ['-a', template, dataDir], { uid: process.getuid(), gid: process.getgid() }, 'copying the template cluster')
}

// Someone else's checkout (a non-root developer next to a root-made node_modules): no cache.
function cacheWritable() {
  try {
    fs.mkdirSync(CACHE, { recursive: true })
    fs.accessSync(CACHE, fs.constants.W_OK)
    return true
  } catch (err) {
    if (isErrno(err, 'EACCES') || isErrno(err, 'EROFS') || isErrno(err, 'EPERM')) return false
    throw err
  }
}

function buildTemplate(template, user) {
  const work = makeTempDir(user)
  try {
    run(join(PG_BIN, 'initdb'), ['-D', join(work, 'data'), ...INITDB_ARGS], user, 'initdb')
    const staging = join(CACHE, `.staging-${process.pid}-${basename(work)}`)
    run('cp', ['-a', join(work, 'data'), staging], { uid: process.getuid(), gid: process.getgid() }, 'caching the template')
    try {
      fs.renameSync(staging, template)
    } catch (err) {
      // Another process cached it first: theirs is as good as ours.
      removeDir(staging)
      if (!isErrno(err, 'ENOTEMPTY') && !isErrno(err, 'EEXIST')) throw err
    }
  } finally {
    removeDir(work)
  }
}

function isErrno(err, code) {
  return err instanceof Error && /** @type {NodeJS.ErrnoException} */ (err).code === code
}

function settingsArgs(socketDir, extra = {}) {
  const args = ['-k', socketDir, '-p', String(PORT)]
  for (const [k, v] of Object.entries({ ...SERVER_SETTINGS, ...extra })) args.push('-c', `${k}=${v}`)
  return args
}

function describe(dir) {
  const socketDir = dir
  const connectionString = `postgresql://postgres@/postgres?host=${encodeURIComponent(socketDir)}&port=${PORT}`
  return { dir, dataDir: join(dir, 'data'), socketDir, port: PORT, connectionString }
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/

/**
 * TCP as well as the unix socket: `address` (one IPv4 address of this host, e.g. a veth end) and
 * the clients trusted on it (`clients`, an IPv4 CIDR such as a namespace's address /32). Written
 * into the data directory, so it holds across restarts.
 */
function checkListen(listen) {
  if (listen === undefined) return null
  const ok = (m) => m !== null && m.slice(1, 5).every((x) => Number(x) <= 255)
  if (typeof listen !== 'object' || listen === null || !ok(IPV4.exec(String(listen.address))) || !ok(IPV4_CIDR.exec(String(listen.clients)))) {
    throw new Error('listen must be { address: "a.b.c.d", clients: "a.b.c.d/n" }')
  }
  return { address: listen.address, clients: listen.clients }
}

function allowClients(dataDir, clients) {
  const hba = join(dataDir, 'pg_hba.conf')
  const line = `host all all ${clients} trust`
  const text = fs.readFileSync(hba, 'utf8')
  if (!text.split('\n').includes(line)) fs.appendFileSync(hba, `${line}\n`)
}

/** The postmaster's pid and status from postmaster.pid, or null when there is none. */
export function readPostmasterPid(dataDir) {
  let text
  try {
    text = fs.readFileSync(join(dataDir, 'postmaster.pid'), 'utf8')
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null
    throw err
  }
  const lines = text.split('\n')
  const pid = Number(lines[0])
  // Line 8 is the status; it is written last, so a short file is a server still starting.
  return { pid, status: (lines[7] ?? '').trim() }
}

function delay(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

/** Spawns the postmaster on an existing data directory and waits until it accepts connections. */
async function launch(info, user) {
  const logFd = fs.openSync(join(info.dir, 'postgres.log'), 'a', 0o600)
  let child
  try {
    child = spawn(join(PG_BIN, 'postgres'), ['-D', info.dataDir, ...settingsArgs(info.socketDir, info.settings)], {
      ...asServerUser(user),
      detached: true,
      stdio: ['ignore', logFd, logFd],
    })
  } finally {
    fs.closeSync(logFd)
  }
  let exited = null
  child.once('exit', (code, signal) => {
    exited = { code, signal }
  })
  const spawnError = new Promise((_, reject) => child.once('error', reject))
  spawnError.catch(() => {})
  child.unref()
  const deadline = Date.now() + START_LIMIT_MS
  // postmaster.pid's status line turns "ready" when connections are accepted; pg_ctl -w polls
  // at 100 ms, which would be most of a start.
  for (;;) {
    if (exited) throw new Error(`postgres exited during start (${exited.code ?? exited.signal}):\n${logTail(info.dir)}`)
    const pm = readPostmasterPid(info.dataDir)
    if (pm && pm.pid === child.pid && pm.status === 'ready') break
    if (Date.now() > deadline) {
      child.kill('SIGQUIT')
      throw new Error(`postgres did not become ready within ${START_LIMIT_MS} ms:\n${logTail(info.dir)}`)
    }
    await Promise.race([delay(5), spawnError])
  }
  return child.pid
}

function logTail(dir) {
  try {
    return fs.readFileSync(join(dir, 'postgres.log'), 'utf8').split('\n').slice(-20).join('\n')
  } catch {
    return '(no log)'
  }
}

function writeState(info) {
  fs.writeFileSync(join(info.dir, 'cluster.json'), `${JSON.stringify(publicInfo(info))}\n`, { mode: 0o600 })
}

function publicInfo(info) {
  const tcp = info.tcpConnectionString ? { tcpConnectionString: info.tcpConnectionString } : {}
  return { dir: info.dir, socketDir: info.socketDir, port: info.port, connectionString: info.connectionString, ...tcp, pid: info.pid, settings: info.settings }
}

// Guardian: a shell that reads a pipe held open by this process; EOF means this process is gone
// (however it ended). It then stops the server the way `immediate` does and removes the directory.
// It waits for postmaster.pid to vanish rather than for the pid: the pid's new parent may never
// reap it (pid 1 in a container is not always an init).
const GUARD_SCRIPT = `
dir=$1
read -r line
[ "$line" = dismiss ] && exit 0
pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
  kill -QUIT "$pid" 2>/dev/null
  n=0
  while [ -e "$dir/data/postmaster.pid" ] && kill -0 "$pid" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$dir"
`

function spawnGuardian(dir) {
  const g = spawn('sh', ['-c', GUARD_SCRIPT, 'proclease-pg-guard', dir], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] })
  g.unref()
  // The pipe must not keep this process alive; it closes when we exit.
  const pipe = /** @type {import('node:net').Socket} */ (/** @type {unknown} */ (g.stdin))
  pipe.unref()
  g.stdin.on('error', () => {})
  return g
}

const guardians = new Map()

/**
 * Starts a cluster. `dir`: where (created if missing; default a new temporary directory).
 * `guard` (default true): stop and remove it when this process ends, however it ends.
 * `settings`: more server settings (name → value), kept across restarts.
 * `listen`: { address, clients } to listen on TCP too (see checkListen); the result then has
 * `tcpConnectionString`. Default: the unix socket only.
 */
export async function start({ dir, guard = true, settings = {}, listen } = {}) {
  const tcp = checkListen(listen)
  const user = serverUser()
  const t0 = performance.now()
  const root = dir ? resolve(dir) : makeTempDir(user)
  if (dir) makeOwnedDir(root, user)
  const info = { ...describe(root), settings: { ...settings, ...(tcp ? { listen_addresses: tcp.address } : {}) } }
  if (tcp) info.tcpConnectionString = `postgresql://postgres@${tcp.address}:${PORT}/postgres`
  const guardian = guard ? spawnGuardian(root) : null
  if (guardian) guardians.set(root, guardian)
  try {
    if (!fs.existsSync(join(info.dataDir, 'PG_VERSION'))) initData(info.dataDir, user)
    if (tcp) allowClients(info.dataDir, tcp.clients)
    const tInit = performance.now()
    info.pid = await launch(info, user)
    writeState(info)
    info.timings = { initMs: tInit - t0, launchMs: performance.now() - tInit }
    return info
  } catch (err) {
    if (guardian) dismiss(root, 'stop')
    else if (!dir) removeDir(root)
    throw err
  }
}

function dismiss(dir, how) {
  const g = guardians.get(dir)
  guardians.delete(dir)
  if (!g) return
  g.stdin.end(how === 'stop' ? 'stop\n' : 'dismiss\n')
}

/** Reads a cluster's state file (as written by start). */
export function load(dir) {
  const d = resolve(dir)
  const state = JSON.parse(fs.readFileSync(join(d, 'cluster.json'), 'utf8'))
  return { ...describe(d), ...state }
}

/**
 * Stops the server (mode: smart | fast | immediate, default fast) and waits until its
 * postmaster has exited. Keeps the directory when `keep` is set (for restart).
 */
export async function stop(cluster, { mode = 'fast', keep = false } = {}) {
  const info = typeof cluster === 'string' ? describe(resolve(cluster)) : cluster
  const signal = SIGNALS[mode]
  if (!signal) throw new Error(`unknown stop mode ${mode}`)
  const pm = readPostmasterPid(info.dataDir)
  if (pm) {
    signalIfThere(pm.pid, signal)
    // A paused server (a test that failed before resuming it) must act on the signal now.
    if (alive(pm.pid)) {
      try {
        resume(info)
      } catch (err) {
        // Gone meanwhile (postmaster.pid removed): nothing left to resume.
        if (readPostmasterPid(info.dataDir)) throw err
      }
    }
    await waitGone(info.dataDir, pm.pid)
  }
  if (!keep) {
    dismiss(info.dir, 'dismiss')
    removeDir(info.dir)
  }
}

async function waitGone(dataDir, pid) {
  const deadline = Date.now() + STOP_LIMIT_MS
  for (;;) {
    // The postmaster removes postmaster.pid as it exits; a zombie still answers kill(0).
    if (!fs.existsSync(join(dataDir, 'postmaster.pid')) || !alive(pid)) return
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL')
      throw new Error(`postgres ${pid} did not stop within ${STOP_LIMIT_MS} ms`)
    }
    await delay(5)
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    if (isErrno(err, 'ESRCH')) return false
    throw err
  }
}

/**
 * Stops the server (fast or immediate: immediate is a crash as far as the data is concerned,
 * with recovery at the next start) and starts it again on the same directory and socket.
 */
export async function restart(cluster, { mode = 'fast' } = {}) {
  await stop(cluster, { mode, keep: true })
  cluster.pid = await launch(cluster, serverUser())
  writeState(cluster)
  return cluster
}

/** The postmaster and its children (backends and auxiliary processes), postmaster first. */
export function serverPids(cluster) {
  const pm = readPostmasterPid(cluster.dataDir)
  if (!pm) throw new Error('the server is not running')
  const kids = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1')
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ESRCH')) continue
      throw err
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === pm.pid) kids.push(Number(name))
  }
  return [pm.pid, ...kids]
}

// A server process may exit between the /proc scan and the signal (a backend whose client left):
// nothing to signal then.
function signalIfThere(pid, signal) {
  try {
    process.kill(pid, signal)
  } catch (err) {
    if (!isErrno(err, 'ESRCH')) throw err
  }
}

/** SIGSTOPs the postmaster (first, so it starts nothing new) and then every child. */
export function pause(cluster) {
  for (const pid of serverPids(cluster)) signalIfThere(pid, 'SIGSTOP')
}

/** SIGCONTs the children and then the postmaster. */
export function resume(cluster) {
  for (const pid of serverPids(cluster).reverse()) signalIfThere(pid, 'SIGCONT')
}

// ---- CLI -------------------------------------------------------------------------------------

const CURRENT = join(CACHE, 'current.json')

function parseArgs(argv) {
  const out = { cmd: argv[0], dir: undefined, mode: undefined }
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--dir') out.dir = argv[++i]
    else if (a === '--mode') out.mode = argv[++i]
    else throw new Error(`unknown argument ${a}`)
  }
  return out
}

function rememberedDir() {
  try {
    return JSON.parse(fs.readFileSync(CURRENT, 'utf8')).dir
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new Error('no cluster started with pg:start is remembered; pass --dir')
    throw err
  }
}

async function main(argv) {
  const args = parseArgs(argv)
  switch (args.cmd) {
    case 'start': {
      const info = await start({ dir: args.dir, guard: false })
      fs.mkdirSync(CACHE, { recursive: true })
      fs.writeFileSync(CURRENT, `${JSON.stringify({ dir: info.dir })}\n`)
      process.stdout.write(`${JSON.stringify({ ...publicInfo(info), timings: info.timings })}\n`)
      return
    }
    case 'stop': {
      const dir = args.dir ?? rememberedDir()
      const t0 = performance.now()
      await stop(dir, { mode: args.mode ?? 'fast' })
      if (!args.dir || (fs.existsSync(CURRENT) && rememberedDir() === resolve(dir))) fs.rmSync(CURRENT, { force: true })
      process.stdout.write(`${JSON.stringify({ stopped: resolve(dir), ms: performance.now() - t0 })}\n`)
      return
    }
    case 'restart': {
      const info = load(args.dir ?? rememberedDir())
      const t0 = performance.now()
      await restart(info, { mode: args.mode ?? 'fast' })
      process.stdout.write(`${JSON.stringify({ ...publicInfo(info), ms: performance.now() - t0 })}\n`)
      return
    }
    case 'status': {
      const info = load(args.dir ?? rememberedDir())
      const pm = readPostmasterPid(info.dataDir)
      process.stdout.write(`${JSON.stringify({ ...publicInfo(info), running: pm !== null && alive(pm.pid), status: pm?.status ?? null })}\n`)
      return
    }
    default:
      throw new Error('usage: cluster.mjs start|stop|restart|status [--dir D] [--mode fast|immediate]')
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
