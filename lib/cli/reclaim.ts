// `proclease reclaim`: sweep the slots of holders proven gone, and say what was removed.
import { reclaimLeases } from '../lease/api.js'
import { GATE_WAIT_MS } from '../lease/store.js'
import { EXIT, type Io, noPositionals, optionalString, parse, parseWaitSeconds, requireString, writeJson, writeLine } from './common.js'
import { STORE_OPTIONS, chooseStore, storeHelp, withStore } from './store.js'
import { type JsonKey, keyJson, keyText } from './status.js'

export const RECLAIM_HELP = `Usage: proclease reclaim --key K [--root DIR | --store URL [--ttl SECONDS] [--schema NAME]]
                         [--wait SECONDS] [--dry-run] [--json] [--verbose]

Remove the slot records of holders proven gone (both witnesses: the kernel
lock on the slot is free and the recorded process is dead or unverifiable, or
a reboot happened). Holders that may be alive (alive, unverifiable without a
free kernel lock, foreign) are never touched. Every claim does the same sweep,
so this is an operator's tool: it makes \`status\` tidy, it never frees a slot
that a claim would not. With --store, the same in a PostgreSQL store: a hold
goes when its holder's session is gone (and the server has not restarted
since it was taken).

Options:
  --key K        the key to sweep
  --root DIR     lock root (default: $XDG_RUNTIME_DIR/proclease, else
                 <tmpdir>/proclease-<uid>)
${storeHelp(17)}
  --wait SECONDS how long to wait for a key another process is changing
                 (default 10); then the key is reported as frozen (key_frozen)
  --dry-run, -n  report what would be removed, remove nothing
  --json         machine-readable output (schema version 1, see the README)
  --verbose, -v  add the pids of reclaimed holders and holder details
  --help, -h     this help

Examples:
  proclease reclaim --key deploy --dry-run
  proclease reclaim --key deploy --json
`

export interface ReclaimJson {
  version: 1
  key: string
  dryRun: boolean
  reclaimed: Array<{ slot: number; pid?: number }>
  remaining: JsonKey
}

export async function reclaimCommand(args: string[], io: Io): Promise<number> {
  const parsed = parse('reclaim', args, {
    key: { type: 'string' },
    root: { type: 'string' },
    ...STORE_OPTIONS,
    wait: { type: 'string' },
    'dry-run': { type: 'boolean', short: 'n' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  })
  if (parsed.values.help === true) {
    io.stdout.write(RECLAIM_HELP)
    return EXIT.OK
  }
  noPositionals(parsed, 'reclaim')
  const key = requireString(parsed.values, 'key', 'reclaim')
  const choice = chooseStore(parsed.values, 'reclaim')
  const verbose = parsed.values.verbose === true
  const dryRun = parsed.values['dry-run'] === true
  const waitMs = parseWaitSeconds(optionalString(parsed.values, 'wait', 'reclaim'), 'reclaim') ?? GATE_WAIT_MS
  return withStore(choice, io, 'reclaim', async (store) => {
    const target = store === null ? { lockRoot: choice.kind === 'file' ? choice.lockRoot : undefined } : { store }
    const report = await reclaimLeases({ key, ...target, dryRun, verbose, waitMs })
    const out: ReclaimJson = {
      version: 1,
      key: report.key,
      dryRun: report.dryRun,
      reclaimed: report.reclaimed.map((r) => (verbose && r.pid !== undefined ? { slot: r.slot, pid: r.pid } : { slot: r.slot })),
      remaining: keyJson(report.status, verbose, Date.now()),
    }
    if (parsed.values.json === true) {
      writeJson(io.stdout, out)
      return EXIT.OK
    }
    const verb = dryRun ? 'would reclaim' : 'reclaimed'
    if (out.reclaimed.length === 0) {
      writeLine(io.stdout, `${JSON.stringify(key)}: nothing to reclaim`)
    } else {
      const what = out.reclaimed.map((r) => `slot ${r.slot}${r.pid !== undefined ? ` (pid ${r.pid})` : ''}`).join(', ')
      writeLine(io.stdout, `${JSON.stringify(key)}: ${verb} ${what}`)
    }
    for (const line of keyText(out.remaining, verbose)) writeLine(io.stdout, line)
    return EXIT.OK
  })
}
