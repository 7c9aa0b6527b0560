// Shared pieces of the proclease CLI: exit codes, usage errors, option parsing, error reporting.
import { readFileSync } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { LeaseError, ProbeError } from '../errors.js'

/** Exit statuses (sysexits.h where one fits). Documented in the README's CLI reference. */
export const EXIT = {
  OK: 0,
  /** `probe`: at least one pid could not be probed. */
  FAILED: 1,
  /** EX_USAGE: bad command line (or an option the library rejects as invalid_argument). */
  USAGE: 64,
  /** EX_SOFTWARE: any other error (lock root unsafe/unwritable, locks unsupported, I/O). */
  SOFTWARE: 70,
  /** EX_TEMPFAIL: default for `run` when no slot freed in time (`--busy-exit`). */
  BUSY: 75,
  /** The command exists but could not be executed (as in sh). */
  CANNOT_EXECUTE: 126,
  /** The command was not found (as in sh). */
  NOT_FOUND: 127,
  /** The reader of stdout went away (128 + SIGPIPE, what a shell reports for a tool SIGPIPE killed). */
  PIPE: 141,
} as const

/** A bad command line: reported as one line plus a hint, exit 64. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string | null,
  ) {
    super(message)
    this.name = 'UsageError'
  }
}

export interface Io {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
}

// Characters a terminal may act on rather than print: C0 and C1 controls (ESC starts a sequence
// that can clear the screen or rewrite earlier lines; U+009B is a one-character CSI), DEL, and
// the bidirectional overrides and line separators that make text display as something else.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
// The same minus C0, which JSON.stringify already escapes (its newlines are the layout).
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

function uEscape(c: string): string {
  return NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
}

/**
 * Text with every character a terminal could act on written as a JSON-style escape (`\u001b`).
 * Holders choose their argv0 (process.title), users their keys and paths: printed raw, either
 * could rewrite the operator's terminal.
 */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, uEscape)
}

/** One line of human-readable output, escaped: every line the CLI prints goes through here. */
export function writeLine(stream: NodeJS.WritableStream, text = ''): void {
  stream.write(`${escapeControl(text)}\n`)
}

/**
 * A JSON document. The escapes added for DEL, C1 and the bidi controls are valid JSON and parse
 * to the same strings: only the bytes a terminal would see change.
 */
export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, uEscape)}\n`)
}

/**
 * Watches the output streams for the rest of the run. A reader that goes away (`proclease probe
 * | head -1`) is not an error: the output ends there, quietly, with 141 as when a tool dies of
 * SIGPIPE (Node ignores SIGPIPE, so the write fails with EPIPE instead). Returns the exit status
 * the output's fate imposes, or null while it is fine.
 */
export function watchOutput(io: Io): () => number | null {
  let status: number | null = null
  io.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (status !== null) return
    if (err.code === 'EPIPE') {
      status = EXIT.PIPE
    } else {
      status = EXIT.SOFTWARE
      writeLine(io.stderr, `proclease: cannot write the output: ${err.message}${err.code ? ` (${err.code})` : ''}`)
    }
    // The run may be over already, its status set: this one wins.
    process.exitCode = status
  })
  io.stderr.on('error', () => {
    // Nowhere is left to report a failure to write messages; `run` must still see its command
    // to the end. The exit status still says how things went.
  })
  return () => status
}

/** 128 + the signal's number, as shells report a death by signal. */
export function signalExitCode(signal: NodeJS.Signals): number {
  const n = (osConstants.signals as Record<string, number | undefined>)[signal]
  return 128 + (n ?? 0)
}

type OptionSpec = NonNullable<Parameters<typeof parseArgs>[0]>['options']

export interface Parsed {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
  /** Arguments after a `--` terminator (null when there was none). */
  rest: string[] | null
}

/** A negative number: a value (or a positional), never an option; no option is a digit. */
const NEGATIVE = /^-\.?[0-9]/

function optionTakesValue(options: OptionSpec, token: string): string | null {
  if (!options) return null
  if (token.startsWith('--')) {
    const name = token.slice(2)
    return options[name]?.type === 'string' ? name : null
  }
  if (token.length !== 2) return null
  for (const [name, spec] of Object.entries(options)) if (spec.short === token[1] && spec.type === 'string') return name
  return null
}

/**
 * parseArgs, strict, with usage errors instead of TypeErrors. Positionals before `--` and after
 * it are kept apart so `run` can insist on `-- CMD`.
 *
 * Before parseArgs sees them, options that take a value are joined with it (`--wait -1` becomes
 * `--wait=-1`): parseArgs would call a value that starts with a dash "ambiguous". A negative
 * number is taken as the value (the option's own check then says what is wrong with it); any
 * other dash-led word is an option forgotten a value (`--key --limit 2`), unless written
 * `--key=--limit`. Negative numbers elsewhere are positionals (`probe -1`).
 */
export function parse(command: string, args: string[], options: OptionSpec): Parsed {
  const dash = args.indexOf('--')
  const head = dash === -1 ? args : args.slice(0, dash)
  const rest = dash === -1 ? null : args.slice(dash + 1)
  const optionArgs: string[] = []
  const positionals: string[] = []
  for (let i = 0; i < head.length; i++) {
    const token = head[i] as string
    if (token === '-' || !token.startsWith('-') || NEGATIVE.test(token)) {
      positionals.push(token)
      continue
    }
    const name = optionTakesValue(options, token)
    if (name === null) {
      optionArgs.push(token)
      continue
    }
    const value = head[i + 1]
    if (value === undefined) throw new UsageError(`${token} needs a value`, command)
    if (value.startsWith('-') && value !== '-' && !NEGATIVE.test(value)) {
      throw new UsageError(`${token} needs a value; ${JSON.stringify(value)} is an option (write ${token}=${value} if that is the value)`, command)
    }
    optionArgs.push(`--${name}=${value}`)
    i++
  }
  try {
    const { values } = parseArgs({ args: optionArgs, options, allowPositionals: false, strict: true })
    return { values: values as Parsed['values'], positionals, rest }
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] ?? String(err) : String(err)
    throw new UsageError(msg.replace(/\. To specify a positional argument.*$/, ''), command)
  }
}

export function requireString(values: Parsed['values'], name: string, command: string): string {
  const v = optionalString(values, name, command)
  if (v === undefined) throw new UsageError(`missing --${name}`, command)
  return v
}

/** The option's value; an empty one is a usage error (an unset shell variable, most often). */
export function optionalString(values: Parsed['values'], name: string, command: string): string | undefined {
  const v = values[name]
  if (typeof v !== 'string') return undefined
  if (v.length === 0) throw new UsageError(`--${name} must not be empty`, command)
  return v
}

export function parseLimit(text: string | undefined, command: string): number {
  if (text === undefined) return 1
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) {
    throw new UsageError(`--limit must be a whole number >= 1, got ${JSON.stringify(text)}`, command)
  }
  return Number(text)
}

/** `--weight`: a whole number from 1 to the limit (default 1); the share of the limit a hold takes. */
export function parseWeight(text: string | undefined, limit: number, command: string): number {
  if (text === undefined) return 1
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) {
    throw new UsageError(`--weight must be a whole number >= 1, got ${JSON.stringify(text)}`, command)
  }
  const weight = Number(text)
  if (weight > limit) throw new UsageError(`--weight ${weight} is above --limit ${limit}: such a hold could never be granted`, command)
  return weight
}

/** Seconds (decimals allowed) to milliseconds; undefined means wait forever. */
export function parseWaitSeconds(text: string | undefined, command: string): number | undefined {
  if (text === undefined) return undefined
  if (!/^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/.test(text)) {
    throw new UsageError(`--wait must be a number of seconds >= 0, got ${JSON.stringify(text)}`, command)
  }
  const ms = Number(text) * 1000
  if (!Number.isFinite(ms)) throw new UsageError(`--wait is too large: ${JSON.stringify(text)}`, command)
  return ms
}

export function parseExitCode(text: string | undefined, fallback: number, name: string, command: string): number {
  if (text === undefined) return fallback
  if (!/^[0-9]{1,3}$/.test(text) || Number(text) > 255) {
    throw new UsageError(`--${name} must be an exit status 0..255, got ${JSON.stringify(text)}`, command)
  }
  return Number(text)
}

export function noPositionals(parsed: Parsed, command: string): void {
  const extra = parsed.positionals[0] ?? parsed.rest?.[0]
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`, command)
}

function hint(command: string | null): string {
  return command ? `proclease ${command} --help` : 'proclease --help'
}

/** Reports an error on stderr and returns the exit status it maps to. */
export function reportError(err: unknown, io: Io, command: string | null = null): number {
  if (err instanceof UsageError) {
    writeLine(io.stderr, `proclease: ${err.message} (try: ${hint(err.command)})`)
    return EXIT.USAGE
  }
  if (err instanceof LeaseError) {
    if (err.code === 'invalid_argument') {
      // The library's own argument checks (key length, well-formed Unicode...): a usage error.
      writeLine(io.stderr, `proclease: ${err.message} (invalid_argument; try: ${hint(command)})`)
      return EXIT.USAGE
    }
    writeLine(io.stderr, `proclease: ${err.message} (${err.code})`)
    return EXIT.SOFTWARE
  }
  if (err instanceof ProbeError) {
    writeLine(io.stderr, `proclease: ${err.message} (${err.code})`)
    return EXIT.SOFTWARE
  }
  const e = err as NodeJS.ErrnoException
  const code = e && typeof e.code === 'string' ? ` (${e.code})` : ''
  const msg = err instanceof Error ? err.message : String(err)
  writeLine(io.stderr, `proclease: ${msg}${code}`)
  return EXIT.SOFTWARE
}

/** The package's version, read from the package.json above this file (lib/cli or dist). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'proclease' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // Not here: look one level up.
    }
    dir = dirname(dir)
  }
  return 'unknown'
}

/** `A/L held`, the one form every count in the CLI takes; `?` for a limit no record states. */
export function heldText(active: number, limit: number | null): string {
  return `${active}/${limit ?? '?'} held`
}

/**
 * The count of a key: `A/L held` while every hold weighs 1; once weights are in play (`weighted`,
 * or the sum differs from the count), `U/L used by A holder(s)`, since the limit bounds the sum.
 */
export function usageText(active: number, used: number, limit: number | null, weighted: boolean): string {
  if (!weighted && used === active) return heldText(active, limit)
  return `${used}/${limit ?? '?'} used by ${active} holder${active === 1 ? '' : 's'}`
}

/** Human-friendly duration: 850ms, 12s, 3m04s, 2h05m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?'
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`
}
