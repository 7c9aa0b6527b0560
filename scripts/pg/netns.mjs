// A network namespace joined to this host by a veth pair, for partition tests: a process run in
// it (`wrap`) reaches the host only over the pair, so taking the namespace's end down partitions
// it from a server on the host's end, silently in both directions (no RST, no ICMP: packets are
// dropped), and bringing it up heals the partition.
//
// Addresses are a /30 in 10.231.0.0/16, on this pair only; names start with "plf". Needs root
// (CAP_NET_ADMIN, CAP_SYS_ADMIN). Clean-up: like cluster.mjs, a guardian shell holds a pipe from
// this process and deletes the pair and the namespace when this process ends in any way;
// remove() does the same at once.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'

function ip(args, what) {
  const r = spawnSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (r.error) throw new Error(`${what}: ${r.error.message}`, { cause: r.error })
  if (r.status !== 0) throw new Error(`${what} failed (ip ${args.join(' ')}): ${r.stderr || r.stdout}`)
  return r.stdout
}

const GUARD_SCRIPT = `
ns=$1; hostIf=$2
read -r line
[ "$line" = dismiss ] && exit 0
ip link del "$hostIf" 2>/dev/null
ip netns del "$ns" 2>/dev/null
exit 0
`

/** A /30 of 10.231.0.0/16 that no interface of this host uses yet. */
function freeSubnet() {
  const used = ip(['-4', '-o', 'addr', 'show'], 'listing addresses')
  for (let i = 0; i < 20; i++) {
    const third = randomInt(0, 256)
    const base = randomInt(0, 64) * 4
    const host = `10.231.${third}.${base + 1}`
    const peer = `10.231.${third}.${base + 2}`
    if (!used.includes(` 10.231.${third}.`)) return { host, peer }
  }
  throw new Error('no free /30 in 10.231.0.0/16')
}

/**
 * Creates the namespace and the pair, both ends up. Resolves to
 * { name, hostAddress, nsAddress, wrap, partition(), heal(), remove() }.
 */
export function createNetns() {
  if (process.getuid?.() !== 0) throw new Error('network namespaces need root')
  const tag = randomBytes(3).toString('hex')
  const name = `plf${tag}`
  const hostIf = `plf${tag}h`
  const nsIf = `plf${tag}n`
  const { host, peer } = freeSubnet()
  const guard = spawn('sh', ['-c', GUARD_SCRIPT, 'proclease-netns-guard', name, hostIf], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] })
  guard.unref()
  const pipe = /** @type {import('node:net').Socket} */ (/** @type {unknown} */ (guard.stdin))
  pipe.unref()
  guard.stdin.on('error', () => {})
  let removed = false
  const remove = () => {
    if (removed) return
    removed = true
    // Deleting one end of a pair deletes both at once; the namespace after it.
    spawnSync('ip', ['link', 'del', hostIf], { stdio: 'ignore' })
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
    guard.stdin.end('dismiss\n')
  }
  try {
    ip(['netns', 'add', name], 'creating the namespace')
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf], 'creating the veth pair')
    ip(['link', 'set', nsIf, 'netns', name], 'moving one end into the namespace')
    ip(['addr', 'add', `${host}/30`, 'dev', hostIf], 'addressing the host end')
    ip(['link', 'set', hostIf, 'up'], 'bringing the host end up')
    ip(['-n', name, 'addr', 'add', `${peer}/30`, 'dev', nsIf], 'addressing the namespace end')
    ip(['-n', name, 'link', 'set', 'lo', 'up'], 'bringing lo up in the namespace')
    ip(['-n', name, 'link', 'set', nsIf, 'up'], 'bringing the namespace end up')
  } catch (err) {
    remove()
    throw err
  }
  return {
    name,
    hostAddress: host,
    nsAddress: peer,
    wrap: ['ip', 'netns', 'exec', name],
    partition() {
      ip(['-n', name, 'link', 'set', nsIf, 'down'], 'partitioning')
    },
    heal() {
      ip(['-n', name, 'link', 'set', nsIf, 'up'], 'healing')
    },
    remove,
    /** Whether the namespace and the host end still exist (for clean-up tests). */
    exists() {
      const nsList = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
      const link = spawnSync('ip', ['link', 'show', hostIf], { stdio: 'ignore' }).status === 0
      return nsList.split('\n').some((l) => l.split(' ')[0] === name) || link
    },
  }
}
