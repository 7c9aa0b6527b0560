// Runs arm64 Linux programs on an x86-64 host under qemu-user, children included.
//
// An arm64 node that spawns node (process.execPath) needs the kernel to hand arm64 ELF files to
// qemu: a binfmt_misc entry. The host's binfmt_misc is machine-wide, so nothing is registered
// there; since Linux 6.7 each user namespace can mount its own, and the command runs inside a
// private user + mount namespace holding only our entry, gone when the command ends. On an older
// kernel an aarch64 entry already registered on the host (e.g. by Debian's binfmt-support) is used.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { fetchPinned, PINNED } from './pinned.mjs'

// Debian packages that provide what runArm64 uses: qemu, the arm64 loader, libc and libstdc++.
export const ARM64_DEBIAN_PACKAGES = ['qemu-user-static', 'libc6-arm64-cross', 'libstdc++6-arm64-cross']
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu'

// Magic and mask of an ELF64 little-endian aarch64 executable, as Debian's qemu-aarch64 entry.
const MAGIC = '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00'
const MASK = '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff'

function which(tool) {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

function hostHasAarch64Entry() {
  const dir = '/proc/sys/fs/binfmt_misc'
  if (!existsSync(dir)) return false
  return readdirSync(dir).some((f) => f.includes('aarch64') && readFileSync(`${dir}/${f}`, 'utf8').startsWith('enabled'))
}

/** What is missing to run arm64 programs here, or null when nothing is. */
export function arm64Missing() {
  const qemu = which('qemu-aarch64-static') ?? which('qemu-aarch64')
  if (!qemu) return `no qemu-aarch64; install the Debian packages ${ARM64_DEBIAN_PACKAGES.join(' ')}`
  if (!existsSync(`${ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1`)) {
    return `no arm64 loader in ${ARM64_SYSROOT}; install the Debian packages ${ARM64_DEBIAN_PACKAGES.join(' ')}`
  }
  return null
}

/** The pinned arm64 node binary, fetched on first use. */
export function arm64Node() {
  return `${fetchPinned(PINNED.nodeArm64)}/bin/node`
}

/**
 * Runs `command args` with arm64 executables going through qemu. Returns spawnSync's result;
 * throws when this host cannot run arm64 programs at all.
 */
export function runArm64(command, args, opts = {}) {
  const missing = arm64Missing()
  if (missing) throw new Error(missing)
  const qemu = which('qemu-aarch64-static') ?? which('qemu-aarch64')
  const env = { ...(opts.env ?? process.env), QEMU_LD_PREFIX: ARM64_SYSROOT }
  const spawnOpts = { encoding: 'utf8', stdio: 'inherit', ...opts, env }

  // Flag F: the kernel opens qemu now, so the entry keeps working whatever the child's mounts.
  const entry = `:proclease-aarch64:M::${MAGIC}:${MASK}:${qemu}:F`
  const register = 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf "%s" "$1" > /proc/sys/fs/binfmt_misc/register'
  const namespaced = (script, ...rest) => ['--user', '--map-root-user', '--mount', '--fork', 'sh', '-c', script, 'sh', entry, ...rest]
  const probe = spawnSync('unshare', namespaced(register), { encoding: 'utf8' })
  if (probe.status === 0) return spawnSync('unshare', namespaced(`${register} && shift && exec "$@"`, command, ...args), spawnOpts)
  if (hostHasAarch64Entry()) return spawnSync(command, args, spawnOpts)
  throw new Error(
    `cannot run arm64 programs: no private binfmt_misc (needs Linux >= 6.7 and unprivileged user namespaces: ${probe.stderr.trim()}) ` +
      'and no aarch64 entry registered on the host',
  )
}
