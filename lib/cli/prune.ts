// `proclease prune`: remove the directories (or rows) of keys nobody holds or waits for and nobody
// has used for a while. Per-entity keys (one per session id) otherwise stay forever.
import { pruneLeaseKeys } from '../lease/api.js'
import { EXIT, type Io, UsageError, noPositionals, optionalString, parse, writeJson, writeLine } from './common.js'
import { parseDuration } from './duration.js'
import { STORE_OPTIONS, chooseStore, storeHelp, withStore } from './store.js'

/** Default idle time: a key untouched for a day is not one a running job still uses. */
export const DEFAULT_IDLE = '1d'

export const PRUNE_HELP = `Usage: proclease prune [--idle DURATION] [--dry-run] [--json]
                       [--root DIR | --store URL [--ttl SECONDS] [--schema NAME]]

Remove keys that have no holder and no waiter and have not been claimed,
released or waited for within DURATION, and print which were removed. Keys
that are held, waited for, or used recently are kept. Safe against a claim
of the same key racing the removal; a key used again after it was pruned
still gets fences larger than any it granted before.

Options:
  --idle DURATION  how long a key must have been idle (default ${DEFAULT_IDLE}): a
                   number with a unit, largest first (30s, 10m, 2h, 1d, 1w,
                   1h30m; also ms), or a plain number of seconds
  --dry-run, -n    say what would be removed, remove nothing
  --json           machine-readable output (schema version 1, see the README)
  --root DIR       lock root (default: $XDG_RUNTIME_DIR/proclease, else
                   <tmpdir>/proclease-<uid>)
${storeHelp(19)}
  --help, -h       this help

Examples:
  proclease prune
  proclease prune --idle 2h --dry-run
  proclease prune --idle 10m --json | jq -r '.removed[]'
`

export interface PruneJson {
  version: 1
  dryRun: boolean
  idleMs: number
  /** Keys removed (or that would be); a key directory whose key file is unreadable, by its name. */
  removed: string[]
  kept: number
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

export async function pruneCommand(args: string[], io: Io): Promise<number> {
  const parsed = parse('prune', args, {
    idle: { type: 'string' },
    'dry-run': { type: 'boolean', short: 'n' },
    json: { type: 'boolean' },
    root: { type: 'string' },
    ...STORE_OPTIONS,
    help: { type: 'boolean', short: 'h' },
  })
  if (parsed.values.help === true) {
    io.stdout.write(PRUNE_HELP)
    return EXIT.OK
  }
  noPositionals(parsed, 'prune')
  const idleText = optionalString(parsed.values, 'idle', 'prune') ?? DEFAULT_IDLE
  const idleMs = parseDuration(idleText)
  if (idleMs === null) {
    throw new UsageError(`--idle must be a duration such as 30s, 10m, 2h, 1d or a number of seconds, got ${JSON.stringify(idleText)}`, 'prune')
  }
  const dryRun = parsed.values['dry-run'] === true
  const choice = chooseStore(parsed.values, 'prune')
  return withStore(choice, io, 'prune', async (store) => {
    const target = store === null ? { lockRoot: choice.kind === 'file' ? choice.lockRoot : undefined } : { store }
    const report = await pruneLeaseKeys({ idleMs, dryRun, ...target })
    if (parsed.values.json === true) {
      const out: PruneJson = { version: 1, dryRun: report.dryRun, idleMs, removed: report.removed, kept: report.kept }
      writeJson(io.stdout, out)
      return EXIT.OK
    }
    const verb = dryRun ? 'would remove' : 'removed'
    for (const key of report.removed) writeLine(io.stdout, `${verb} ${JSON.stringify(key)}`)
    const kept = `${report.kept} kept`
    if (report.removed.length === 0) {
      writeLine(io.stdout, `nothing to remove, ${plural(report.kept, 'key')} kept`)
    } else if (dryRun) {
      writeLine(io.stdout, `${plural(report.removed.length, 'key')} would be removed, ${kept} (dry run)`)
    } else {
      writeLine(io.stdout, `${plural(report.removed.length, 'key')} removed, ${kept}`)
    }
    return EXIT.OK
  })
}
