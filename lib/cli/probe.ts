// `proclease probe`: the identity of processes as the kernel reports it, and this host's ids.
import { ProbeError } from '../errors.js'
import { type PidInfo, capturePidInfo, hostIdentity, isUnknownBootId } from '../probes.js'
import { EXIT, type Io, parse, writeJson, writeLine } from './common.js'

export const PROBE_HELP = `Usage: proclease probe [PID...] [--json]

Print the identity of each process (default: this probe itself) as the kernel
reports it: pid, raw start time (opaque; compare for equality only), argv0,
state and threads; then this host's boot id, hostname, machine id and pid
namespace. A pid that cannot be probed is reported with its error code:
  invalid_pid    not a pid (0, negative, not a number, above pid_max)
  process_gone   proven gone: no such process, or an exited zombie
  capture_error  cannot verify (permission, hidden /proc, unsupported platform)

Options:
  --json       machine-readable output (schema version 1, see the README)
  --help, -h   this help

Exit status: 0 when every pid was probed, 1 when any failed, 64 usage error,
141 when the reader of the output went away (as with SIGPIPE).

Examples:
  proclease probe
  proclease probe 1 $$ --json
`

export interface ProbeJsonEntry {
  /** The argument as given. */
  arg: string
  /** The pid, or null when the argument is not a whole number. */
  pid: number | null
  ok: boolean
  starttime?: string
  argv0?: string | null
  state?: string
  threads?: number
  error?: { code: string; reason: string; message: string }
}

export interface ProbeJson {
  version: 1
  host: { bootId: string; bootIdKnown: boolean; hostname: string; machineId: string | null; pidNamespace: string | null; platform: string }
  processes: ProbeJsonEntry[]
}

function probeOne(arg: string): ProbeJsonEntry {
  const pid = /^[0-9]+$/.test(arg) && Number.isSafeInteger(Number(arg)) ? Number(arg) : null
  if (pid === null) {
    const message = `not a valid pid: ${JSON.stringify(arg)}`
    return { arg, pid, ok: false, error: { code: 'invalid_pid', reason: 'not_a_pid', message } }
  }
  try {
    const info: PidInfo = capturePidInfo(pid)
    const out: ProbeJsonEntry = { arg, pid, ok: true, starttime: info.starttime, argv0: info.argv0 }
    if (info.state !== undefined) out.state = info.state
    if (info.threads !== undefined) out.threads = info.threads
    return out
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err
    return { arg, pid, ok: false, error: { code: err.code, reason: err.reason, message: err.message } }
  }
}

export async function probeCommand(args: string[], io: Io): Promise<number> {
  const parsed = parse('probe', args, {
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (parsed.values.help === true) {
    io.stdout.write(PROBE_HELP)
    return EXIT.OK
  }
  const pids = [...parsed.positionals, ...(parsed.rest ?? [])]
  if (pids.length === 0) pids.push(String(process.pid))
  const host = hostIdentity()
  const out: ProbeJson = {
    version: 1,
    host: { ...host, bootIdKnown: !isUnknownBootId(host.bootId), platform: process.platform },
    processes: pids.map(probeOne),
  }
  const failed = out.processes.some((p) => !p.ok)

  if (parsed.values.json === true) {
    writeJson(io.stdout, out)
    return failed ? EXIT.FAILED : EXIT.OK
  }
  for (const p of out.processes) {
    if (p.ok) {
      const extra = [p.state !== undefined ? `state ${p.state}` : '', p.threads !== undefined ? `threads ${p.threads}` : '']
        .filter(Boolean)
        .join('  ')
      writeLine(io.stdout, `pid ${p.pid}  starttime ${p.starttime}  argv0 ${p.argv0 === null ? '-' : JSON.stringify(p.argv0)}${extra ? `  ${extra}` : ''}`)
    } else {
      writeLine(io.stdout, `pid ${p.pid ?? JSON.stringify(p.arg)}  ${p.error?.code}: ${p.error?.message}`)
    }
  }
  const h = out.host
  writeLine(io.stdout, `boot id       ${h.bootId}${h.bootIdKnown ? '' : '  (unknown: proves nothing about reboots)'}`)
  writeLine(io.stdout, `hostname      ${h.hostname}`)
  writeLine(io.stdout, `machine id    ${h.machineId ?? '-'}`)
  writeLine(io.stdout, `pid namespace ${h.pidNamespace ?? '-'}`)
  writeLine(io.stdout, `platform      ${h.platform}`)
  return failed ? EXIT.FAILED : EXIT.OK
}
