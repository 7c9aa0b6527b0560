// `proclease run`: hold a slot of a key for the life of a command.
//
// On the file store the hold belongs to the process doing the work. The slot file's open
// descriptor (which carries the slot's kernel lock) is inherited by the command as fd 3, sharing
// the open file description and hence the flock; then the slot record is rewritten to name the
// command. So:
// - SIGKILL of this wrapper leaves the slot held (kernel witness: the command still holds the
//   lock; identity witness: the command is alive) until the command ends;
// - once the command has ended (and this wrapper is gone), the kernel lock is free and the
//   recorded identity is dead: the next claimer reclaims the slot.
// Between spawn and the record rewrite the record still names this wrapper, while the command
// holds the kernel lock too: the slot is occupied either way.
//
// On the PostgreSQL store a session cannot be handed to a child: the wrapper stays the holder
// (run-held.ts). `--no-inherit` asks for the same on the file store: no descriptor is passed, so
// nothing the command starts can keep the slot once the command has ended.
//
// Either way the command learns its hold from the environment (hold-env.ts).
import { type ChildProcess, spawn } from 'node:child_process'
import type { HolderRecord } from '../classify.js'
import { LeaseError, ProbeError } from '../errors.js'
import { acquireLeaseWith } from '../lease/api.js'
import { type Lease, leaseInternals } from '../lease/engine.js'
import type { Hold, LeaseStore } from '../lease/store.js'
import type { HandBack, HandOff, LostCause } from '../lease/store.js'
import { capturePidInfo, hostIdentity } from '../probes.js'
import { SignalOrigins, mustForward } from './signal-origin.js'
import { exitStatusOf, waitForChild } from './child.js'
import {
  EXIT,
  type Io,
  UsageError,
  parse,
  parseExitCode,
  parseLimit,
  parseWaitSeconds,
  parseWeight,
  reportError,
  requireString,
  optionalString,
  signalExitCode,
  usageText,
  writeLine,
} from './common.js'
import { holdEnv } from './hold-env.js'
import { Progress } from './progress.js'
import { type OnLost, runHeld } from './run-held.js'
import { STORE_OPTIONS, type StoreChoice, chooseStore, describeStore, storeHelp, withStore } from './store.js'

export const RUN_HELP = `Usage: proclease run --key K [--limit N] [--weight N] [--no-fair]
                     [--wait SECONDS] [--root DIR]
                     [--fd N | --no-inherit [--on-lost kill|warn]]
                     [--busy-exit CODE] [--quiet | --verbose]
                     (-- CMD [ARGS...] | -c 'SHELL COMMAND')
       proclease run --key K [--limit N] [--wait SECONDS] --store URL
                     [--ttl SECONDS] [--schema NAME] [--on-lost kill|warn]
                     [--busy-exit CODE] [--quiet | --verbose]
                     (-- CMD [ARGS...] | -c 'SHELL COMMAND')

Hold one of the N slots of key K while CMD runs. At most N commands holding
the same key run at once, across every process of this user on this host
(or, with --store, of every host using that database).

Options:
  --key K            the key to hold (any string up to 256 characters)
  --limit N          how many holders the key admits at once (default 1)
  --weight N         the share of the limit this hold takes (default 1, at
                     most N of --limit N): the weights of the holders never
                     sum above the limit, so --weight equal to --limit is an
                     exclusive hold
  --no-fair          take room that fits even while earlier waiters are
                     queued (default: first come, first served)
  --wait SECONDS     give up after this long without a free slot (decimals
                     allowed; default: wait forever; 0: never wait)
  --root DIR         lock root (default: $XDG_RUNTIME_DIR/proclease, else
                     <tmpdir>/proclease-<uid>)
  -c, --command 'SHELL COMMAND'
                     run it with /bin/sh -c (as flock -c), instead of
                     -- CMD [ARGS...]
  --fd N             file store: the descriptor number of the slot's lock in
                     the command (default 3; 3 to 1023)
  --no-inherit       the wrapper keeps the hold and passes no descriptor: the
                     command's own children never hold the slot; the slot is
                     freed when the command ends (or the wrapper dies)
  --busy-exit CODE   exit status when no slot freed in time (default 75);
                     with 0, a busy skip is not an error and prints nothing
  --quiet, -q        no progress line and no busy message
  --verbose, -v      say which slot the command holds; print the busy
                     message even with --busy-exit 0
${storeHelp(21)}
  --on-lost kill|warn
                     PostgreSQL store or --no-inherit: when the hold is lost
                     while the command runs, send it SIGTERM (kill, the
                     default) or only say so (warn)
  --help, -h         this help

Exit status: the command's own; 128+N if it died by signal N; CODE (75)
when no slot freed in time; 64 usage error; 126/127 command not executable/
not found; 70 any other error (message and error code on stderr), e.g.
store_unavailable when the PostgreSQL server cannot be reached.

Environment of the command: PROCLEASE_KEY, PROCLEASE_SLOT, PROCLEASE_FENCE
and PROCLEASE_WEIGHT describe its hold; PROCLEASE_RECOVERED, set only when
this grant follows the removal of a crashed holder of the key, is that
holder's record as JSON (slot, pid, hostname, argv0, acquiredAt, fence,
weight, metadata), so the command can clean up after it. Exactly one later
holder gets each crashed holder's record.

File store (the default): the command inherits the slot's lock as file
descriptor 3 (or --fd N): leave it open (or let it close when the command
ends). Background processes the command starts inherit it too and keep the
slot held until they end; close fd 3 in them (\`3>&-\`) if they should not,
or use --no-inherit. If this wrapper is killed, even with SIGKILL, the slot
stays held until the command (and anything still holding fd 3) ends.

With --no-inherit the wrapper stays the holder, as on a PostgreSQL store:
the command gets no descriptor, the slot is released when the command ends
(whatever it left running), and a wrapper killed by any signal frees the
slot at once while the command may still run.

PostgreSQL store: the wrapper stays the holder (a database session cannot
be handed to the command, so there is no fd 3). The slot is released when
the command ends. If the wrapper is killed, even with SIGKILL, the slot is
free at once while the command may still run: kill the command, not only
the wrapper. If the hold is lost while the command runs (the wrapper was
stopped past the TTL, or lost its connection to the server), the wrapper
says so on stderr at once and, with --on-lost kill (the default), sends the
command SIGTERM; with --on-lost warn the command runs on unguarded.

SIGINT, SIGTERM and SIGHUP sent to the wrapper are forwarded to the command;
on Linux, a terminal's Ctrl-C or hangup, which reaches the command directly,
is not sent again.

Examples:
  proclease run --key deploy -- ./deploy.sh
  proclease run --key gpu --limit 2 -- python train.py --epochs 3
  proclease run --key gpu --limit 4 -c 'CUDA_VISIBLE_DEVICES=$PROCLEASE_SLOT ./train'
  proclease run --key db --limit 8 --weight 8 -- ./migrate.sh     # exclusive
  proclease run --key build --no-inherit -- make -j4    # daemons never hold it
  proclease run --key nightly --wait 0 --busy-exit 0 -- ./nightly.sh   # skip if running
  proclease run --key api --limit 4 --wait 30 -- curl -fsS https://example.com/job
  PROCLEASE_STORE=postgres://app@db.internal/ops proclease run --key deploy -- ./deploy.sh
`

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

export interface RunConfig {
  key: string
  limit: number
  weight: number
  fair: boolean
  waitMs: number | undefined
  store: StoreChoice
  onLost: OnLost
  busyExit: number
  quiet: boolean
  verbose: boolean
  /** The descriptor number the command gets the slot's lock as (file store, inherit only). */
  fd: number
  /** False: the wrapper keeps the hold; no descriptor is passed (always so on PostgreSQL). */
  inherit: boolean
  command: string
  args: string[]
}

/** Highest `--fd`: below the usual soft limit on open files (1024), which the child also has. */
const MAX_FD = 1023
const STD_NAMES = ['stdin', 'stdout', 'stderr']

function parseFd(text: string | undefined): number {
  if (text === undefined) return 3
  if (/^[0-2]$/.test(text)) {
    throw new UsageError(`--fd ${text} is the command's ${STD_NAMES[Number(text)]}: choose 3 or more`, 'run')
  }
  if (!/^[0-9]{1,4}$/.test(text) || Number(text) < 3 || Number(text) > MAX_FD) {
    throw new UsageError(`--fd must be a descriptor number from 3 to ${MAX_FD}, got ${JSON.stringify(text)}`, 'run')
  }
  return Number(text)
}

function parseRun(args: string[]): RunConfig | 'help' {
  const parsed = parse('run', args, {
    key: { type: 'string' },
    limit: { type: 'string' },
    weight: { type: 'string' },
    'no-fair': { type: 'boolean' },
    wait: { type: 'string' },
    root: { type: 'string' },
    ...STORE_OPTIONS,
    command: { type: 'string', short: 'c' },
    fd: { type: 'string' },
    'no-inherit': { type: 'boolean' },
    'on-lost': { type: 'string' },
    'busy-exit': { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  })
  if (parsed.values.help === true) return 'help'
  const first = parsed.positionals[0]
  if (first !== undefined) {
    throw new UsageError(`unexpected argument ${JSON.stringify(first)}: put the command after --`, 'run')
  }
  const key = requireString(parsed.values, 'key', 'run')
  const limit = parseLimit(optionalString(parsed.values, 'limit', 'run'), 'run')
  const weight = parseWeight(optionalString(parsed.values, 'weight', 'run'), limit, 'run')
  const waitMs = parseWaitSeconds(optionalString(parsed.values, 'wait', 'run'), 'run')
  const busyExit = parseExitCode(optionalString(parsed.values, 'busy-exit', 'run'), EXIT.BUSY, 'busy-exit', 'run')
  const store = chooseStore(parsed.values, 'run')
  const fdText = optionalString(parsed.values, 'fd', 'run')
  const fd = parseFd(fdText)
  const noInherit = parsed.values['no-inherit'] === true
  if (fdText !== undefined && noInherit) throw new UsageError('--fd and --no-inherit exclude each other (with --no-inherit no descriptor is passed)', 'run')
  if (fdText !== undefined && store.kind === 'postgres') {
    throw new UsageError('--fd applies to the file store only (on a PostgreSQL store the wrapper holds the slot: no descriptor is passed)', 'run')
  }
  const inherit = store.kind === 'file' && !noInherit
  const onLostText = optionalString(parsed.values, 'on-lost', 'run')
  if (onLostText !== undefined && onLostText !== 'kill' && onLostText !== 'warn') {
    throw new UsageError(`--on-lost must be kill or warn, got ${JSON.stringify(onLostText)}`, 'run')
  }
  if (onLostText !== undefined && inherit) {
    throw new UsageError('--on-lost applies only where the wrapper holds the slot: a PostgreSQL store, or --no-inherit (on the file store the hold belongs to the command)', 'run')
  }
  const quiet = parsed.values.quiet === true
  const verbose = parsed.values.verbose === true
  if (quiet && verbose) throw new UsageError('--quiet and --verbose exclude each other', 'run')
  const rest = parsed.rest ?? []
  const shellCommand = optionalString(parsed.values, 'command', 'run')
  if (shellCommand !== undefined && rest.length > 0) throw new UsageError('-c and -- CMD exclude each other: give the command one way', 'run')
  // As flock -c: the shell parses the command line (so $PROCLEASE_SLOT in it is expanded).
  const argv = shellCommand !== undefined ? ['/bin/sh', '-c', shellCommand] : rest
  const command = argv[0]
  if (command === undefined || command.length === 0) {
    throw new UsageError("missing command: proclease run --key K -- CMD [ARGS...] (or -c 'SHELL COMMAND')", 'run')
  }
  return {
    key,
    limit,
    weight,
    fair: parsed.values['no-fair'] !== true,
    waitMs,
    store,
    onLost: onLostText ?? 'kill',
    busyExit,
    quiet,
    verbose,
    fd,
    inherit,
    command,
    args: argv.slice(1),
  }
}

/** The identity of the command, as a holder record; null when it cannot be read (or it ended). */
function identityOf(pid: number): HolderRecord | null {
  try {
    const info = capturePidInfo(pid)
    return { pid, starttime: info.starttime, argv0: info.argv0, ...hostIdentity() }
  } catch (err) {
    if (err instanceof ProbeError) return null
    throw err
  }
}

export async function runCommand(args: string[], io: Io): Promise<number> {
  const cfg = parseRun(args)
  if (cfg === 'help') {
    io.stdout.write(RUN_HELP)
    return EXIT.OK
  }
  // On PostgreSQL, the store is closed when the command is done: no session keeps the process alive.
  return withStore(cfg.store, io, 'run', (store) => runOn(cfg, io, store))
}

  // Signals: while waiting they abort the wait; once the command runs they are forwarded to it,
  // unless the terminal already sent them to the command too (lib/cli/signal-origin.ts).
/** Waits for a slot, runs the command holding it, releases it. `store` null: the file store. */
async function runOn(cfg: RunConfig, io: Io, store: LeaseStore | null): Promise<number> {
  // Signals: while waiting they abort the wait; once the command runs they are forwarded to it.
  const abort = new AbortController()
  let child: ChildProcess | null = null
  let caught: NodeJS.Signals | null = null
  const origins = new SignalOrigins()
  const onSignal = (signal: NodeJS.Signals): void => {
    const origin = origins.take(signal)
    if (child !== null) {
      const running = child.exitCode === null && child.signalCode === null
      if (running && child.pid !== undefined && mustForward(signal, origin, origins.groups(child.pid))) child.kill(signal)
      return
    }
    caught ??= signal
    abort.abort()
  }
  for (const s of FORWARDED) {
    process.on(s, onSignal)
    origins.watch(s)
  }
  const progress = new Progress(io.stderr, cfg.key, cfg.weight, io.stderr.isTTY === true && !cfg.quiet)

  let lease: Lease
  try {
    lease = await acquireLeaseWith(
      {
        key: cfg.key,
        limit: cfg.limit,
        weight: cfg.weight,
        fair: cfg.fair,
        ...(store !== null ? { store } : { lockRoot: cfg.store.kind === 'file' ? cfg.store.lockRoot : undefined }),
        waitMs: cfg.waitMs,
        signal: abort.signal,
      },
      { onBusy: (active, limit, used) => progress.busy(active, used, limit) },
    )
  } catch (err) {
    progress.done()
    for (const s of FORWARDED) process.removeListener(s, onSignal)
    if (err instanceof LeaseError && err.code === 'aborted' && caught !== null) return signalExitCode(caught)
    if (err instanceof LeaseError && err.code === 'lease_busy') {
      // With --busy-exit 0 the caller asked for a skip, not an error: say so only when asked.
      if (!cfg.quiet && (cfg.busyExit !== EXIT.OK || cfg.verbose)) {
        const waited = cfg.waitMs === undefined ? '' : ` within ${cfg.waitMs / 1000}s`
        const cap = err.capacity ? ` (${usageText(err.capacity.active, err.capacity.used, err.capacity.limit, cfg.weight > 1)})` : ''
        const what = cfg.weight > 1 ? `room for weight ${cfg.weight} in` : 'slot of'
        writeLine(io.stderr, `proclease: no ${what} ${JSON.stringify(cfg.key)} freed${waited}${cap} (lease_busy)`)
      }
      return cfg.busyExit
    }
    if (store !== null) throw err
    return reportError(err, io, 'run')
  }
  progress.done()
  if (cfg.verbose) {
    const where =
      cfg.store.kind === 'postgres'
        ? ` in ${describeStore(cfg.store)}, held by this wrapper while the command runs`
        : cfg.inherit
          ? ''
          : ', held by this wrapper while the command runs (--no-inherit)'
    writeLine(io.stderr, `proclease: holding slot ${lease.slot} of ${JSON.stringify(cfg.key)} (fence ${lease.fence})${where}`)
  }

  if (!cfg.inherit) {
    const lost = { announced: false }
    try {
      if (caught !== null) return signalExitCode(caught)
      return await runHeld(cfg, lease, io, lost, (c) => {
        child = c
      })
    } finally {
      try {
        const ok = await lease.release()
        if (!ok && !lost.announced && !cfg.quiet) {
          const why = lease.signal.aborted ? ` (${String(lease.signal.reason)})` : ''
          writeLine(io.stderr, `proclease: warning: the slot of ${JSON.stringify(cfg.key)} was no longer held when the command ended${why}`)
        }
      } finally {
        for (const s of FORWARDED) process.removeListener(s, onSignal)
      }
    }
  }

  try {
    if (caught !== null) return signalExitCode(caught)
    return await runHolding(cfg, lease, io, (c) => {
      child = c
    })
  } finally {
    try {
      const back: HandBack = child !== null ? await handBack(lease) : (await lease.release()) ? { outcome: 'released' } : { outcome: 'lost', cause: 'record_removed' }
      if (back.outcome === 'lost' && !cfg.quiet) {
        writeLine(io.stderr, `proclease: warning: the slot of ${JSON.stringify(cfg.key)} was no longer held when the command ended: ${lostWhy(back.cause)}`)
      }
      if (back.outcome === 'shared' && !cfg.quiet) {
        writeLine(io.stderr, `proclease: the slot of ${JSON.stringify(cfg.key)} stays held by processes the command left running (they inherited fd ${cfg.fd})`)
      }
    } finally {
      for (const s of FORWARDED) process.removeListener(s, onSignal)
    }
  }
}

/** What happened to a hold that was no longer ours, in an operator's words. */
function lostWhy(cause: LostCause): string {
  return cause === 'record_replaced'
    ? 'its slot record was replaced by another holder (removed by hand or by `reclaim` while it ran?)'
    : 'its slot record was removed (the lock root or key directory deleted, e.g. by a temp-directory cleaner?)'
}

function handOffOf(lease: Lease): { handOff: HandOff; hold: Hold } {
  const inner = leaseInternals(lease)
  const handOff = inner?.store.handOff
  if (!inner || !handOff) throw new Error('internal error: the lease store cannot hand its hold to a command')
  return { handOff, hold: inner.hold }
}

/** After the command: release, unless processes it left running still share the slot's lock. */
async function handBack(lease: Lease): Promise<HandBack> {
  const { handOff, hold } = handOffOf(lease)
  const back = await handOff.releaseUnlessShared(hold)
  await lease.release() // already ended in the store: only stops tracking it for exit
  return back
}

async function runHolding(cfg: RunConfig, lease: Lease, io: Io, setChild: (c: ChildProcess) => void): Promise<number> {
  const { handOff, hold } = handOffOf(lease)
  // The record must stop promising "lock until removal" before the command can touch the lock.
  if (!(await handOff.share(hold))) {
    writeLine(io.stderr, `proclease: the slot of ${JSON.stringify(cfg.key)} was lost before the command started (its record was removed or replaced); not running it`)
    return EXIT.SOFTWARE
  }
  // The lock goes in at index cfg.fd; the descriptors between 3 and it stay closed in the child.
  const stdio: Array<'inherit' | 'ignore' | number> = ['inherit', 'inherit', 'inherit']
  while (stdio.length < cfg.fd) stdio.push('ignore')
  stdio.push(handOff.lockDescriptor(hold))
  const child = spawn(cfg.command, cfg.args, { stdio, env: holdEnv(lease) })
  const ended = waitForChild(child)
  if (child.pid !== undefined) {
    setChild(child)
    // Captured synchronously: the child cannot have been reaped yet, so its pid is still its own.
    const identity = identityOf(child.pid)
    if (identity !== null) {
      // The command runs now, whatever happens here: never abandon it. If the record cannot be
      // rewritten, the command still holds the kernel lock it inherited.
      let ok: boolean
      try {
        ok = await handOff.transfer(hold, identity)
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        writeLine(io.stderr, `proclease: warning: could not hand the slot record to the command: ${e?.message ?? String(err)}${e?.code ? ` (${e.code})` : ''}`)
        ok = true
      }
      if (!ok) {
        writeLine(io.stderr, `proclease: warning: the slot of ${JSON.stringify(cfg.key)} was lost before the command started (its record was removed or replaced); the command runs unguarded`)
      }
    }
  }
  return exitStatusOf(await ended, cfg.command, io)
}
