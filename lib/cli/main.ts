#!/usr/bin/env node
// The proclease command line: run, status, probe, reclaim, prune.
import { EXIT, type Io, UsageError, packageVersion, reportError, watchOutput } from './common.js'
import { PROBE_HELP, probeCommand } from './probe.js'
import { PRUNE_HELP, pruneCommand } from './prune.js'
import { RECLAIM_HELP, reclaimCommand } from './reclaim.js'
import { RUN_HELP, runCommand } from './run.js'
import { STATUS_HELP, statusCommand } from './status.js'

const MAIN_HELP = `Usage: proclease <command> [options]

Crash-safe counting semaphore for processes: like flock(1), but with N slots,
holders that are proven dead before their slot is reused, and inspection.

Commands:
  run       hold a slot of a key while a command runs
  status    show holders of one key or of every key
  probe     show process identities and this host's boot id
  reclaim   remove slots of holders proven gone
  prune     remove keys nobody has used for a while

Options:
  --help, -h      help (also: proclease <command> --help)
  --version, -V   print the version

Across hosts: run, status, reclaim and prune take --store postgres://...
(default: $PROCLEASE_STORE) to keep holds in a PostgreSQL database instead of
a lock root on this host; there, run's wrapper stays the holder (see run
--help).

Examples:
  proclease run --key deploy -- ./deploy.sh
  proclease run --key gpu --limit 2 --wait 600 -- python train.py
  proclease status --verbose
  proclease probe $$
  proclease prune --idle 1d
  proclease run --store postgres://app@db.internal/ops --key deploy -- ./deploy.sh
`

const COMMANDS: Record<string, { help: string; run: (args: string[], io: Io) => Promise<number> }> = {
  run: { help: RUN_HELP, run: runCommand },
  status: { help: STATUS_HELP, run: statusCommand },
  probe: { help: PROBE_HELP, run: probeCommand },
  reclaim: { help: RECLAIM_HELP, run: reclaimCommand },
  prune: { help: PRUNE_HELP, run: pruneCommand },
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv
  try {
    if (first === undefined) {
      io.stderr.write(MAIN_HELP)
      return EXIT.USAGE
    }
    if (first === '--help' || first === '-h') {
      io.stdout.write(MAIN_HELP)
      return EXIT.OK
    }
    if (first === 'help') {
      const topic = rest[0]
      if (topic === undefined) {
        io.stdout.write(MAIN_HELP)
        return EXIT.OK
      }
      const cmd = COMMANDS[topic]
      if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(topic)}`, null)
      io.stdout.write(cmd.help)
      return EXIT.OK
    }
    if (first === '--version' || first === '-V') {
      io.stdout.write(`${packageVersion()}\n`)
      return EXIT.OK
    }
    const cmd = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined
    if (!cmd) {
      const what = first.startsWith('-') ? `unknown option ${JSON.stringify(first)}` : `unknown command ${JSON.stringify(first)}`
      throw new UsageError(what, null)
    }
    return await cmd.run(rest, io)
  } catch (err) {
    return reportError(err, io, first !== undefined && Object.hasOwn(COMMANDS, first) ? first : null)
  }
}

// No process.exit(): output to pipes may still be flushing; nothing else keeps the loop alive.
const io: Io = { stdout: process.stdout, stderr: process.stderr }
const outputStatus = watchOutput(io)
void main(process.argv.slice(2), io).then((code) => {
  process.exitCode = outputStatus() ?? code
})
