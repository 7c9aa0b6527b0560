// Usage errors (exit 64, one line with a hint), --help, --version.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ROOT, finish, runCli, tempRoot } from './harness.js'

let root: string
let remove: () => void

beforeEach(() => {
  ;({ root, remove } = tempRoot())
})

afterEach(() => remove())

afterAll(finish)

const ran = ['--', process.execPath, '-e', 'console.log("ran")']

describe('usage errors exit 64 with a one-line hint and run nothing', () => {
  const cases: Array<[string, (root: string) => string[], RegExp]> = [
    ['missing --key', (r) => ['run', '--root', r, ...ran], /missing --key \(try: proclease run --help\)/],
    ['empty --key', (r) => ['run', '--key', '', '--root', r, ...ran], /--key must not be empty \(try: proclease run --help\)/],
    ['empty --key=', (r) => ['run', '--key=', '--root', r, ...ran], /--key must not be empty/],
    ['status with an empty --key', (r) => ['status', '--key', '', '--root', r], /--key must not be empty \(try: proclease status --help\)/],
    ['reclaim with an empty --key', (r) => ['reclaim', '--key', '', '--root', r], /--key must not be empty/],
    ['status with an empty --root', () => ['status', '--root', ''], /--root must not be empty/],
    ['run with an empty --root', () => ['run', '--key', 'k', '--root', '', ...ran], /--root must not be empty/],
    ['--wait -1', (r) => ['run', '--key', 'k', '--wait', '-1', '--root', r, ...ran], /--wait must be a number of seconds >= 0, got "-1"/],
    ['--wait -0.5', (r) => ['run', '--key', 'k', '--wait', '-0.5', '--root', r, ...ran], /--wait must be a number of seconds >= 0, got "-0\.5"/],
    ['--limit -3', (r) => ['run', '--key', 'k', '--limit', '-3', '--root', r, ...ran], /--limit must be a whole number >= 1, got "-3"/],
    ['--busy-exit -1', (r) => ['run', '--key', 'k', '--busy-exit', '-1', '--root', r, ...ran], /--busy-exit must be an exit status 0\.\.255, got "-1"/],
    ['--key followed by an option', (r) => ['run', '--key', '--limit', '2', '--root', r, ...ran], /--key needs a value; "--limit" is an option \(write --key=--limit if that is the value\)/],
    ['--key followed by a short option', (r) => ['run', '--key', '-q', '--root', r, ...ran], /--key needs a value; "-q" is an option \(write --key=-q if that is the value\)/],
    ['--key before --', (r) => ['run', '--root', r, '--key', ...ran], /--key needs a value \(try: proclease run --help\)/],
    ['--root at the end', () => ['status', '--root'], /--root needs a value/],
    ['--quiet with --verbose', (r) => ['run', '--key', 'k', '--quiet', '--verbose', '--root', r, ...ran], /--quiet and --verbose exclude each other/],
    ['status with a negative number', (r) => ['status', '--root', r, '-1'], /unexpected argument "-1"/],
    ['missing command', (r) => ['run', '--key', 'k', '--root', r], /missing command/],
    ['empty command', (r) => ['run', '--key', 'k', '--root', r, '--'], /missing command/],
    ['command without --', (r) => ['run', '--key', 'k', '--root', r, 'true'], /unexpected argument "true": put the command after --/],
    ['--limit 0', (r) => ['run', '--key', 'k', '--limit', '0', '--root', r, ...ran], /--limit must be a whole number >= 1, got "0"/],
    ['--limit abc', (r) => ['run', '--key', 'k', '--limit', 'abc', '--root', r, ...ran], /--limit must be/],
    ['--limit 1.5', (r) => ['run', '--key', 'k', '--limit', '1.5', '--root', r, ...ran], /--limit must be/],
    ['--limit -1', (r) => ['run', '--key', 'k', '--limit=-1', '--root', r, ...ran], /--limit must be/],
    ['--limit without a value', (r) => ['run', '--root', r, '--key', 'k', '--limit'], /--limit/],
    ['--wait soon', (r) => ['run', '--key', 'k', '--wait', 'soon', '--root', r, ...ran], /--wait must be a number of seconds/],
    ['--busy-exit 256', (r) => ['run', '--key', 'k', '--busy-exit', '256', '--root', r, ...ran], /--busy-exit must be an exit status 0\.\.255/],
    ['unknown option', (r) => ['run', '--key', 'k', '--bogus', '--root', r, ...ran], /Unknown option '--bogus'/],
    ['key too long (checked by the library)', (r) => ['run', '--key', 'x'.repeat(300), '--root', r, ...ran], /key must be at most 256 characters \(invalid_argument; try: proclease run --help\)/],
    ['status with an argument', (r) => ['status', '--root', r, 'extra'], /unexpected argument "extra" \(try: proclease status --help\)/],
    ['status unknown option', (r) => ['status', '--root', r, '--bogus'], /Unknown option/],
    ['reclaim without --key', (r) => ['reclaim', '--root', r], /missing --key \(try: proclease reclaim --help\)/],
    ['probe unknown option', () => ['probe', '--bogus'], /Unknown option .*\(try: proclease probe --help\)/],
    ['--weight 0', (r) => ['run', '--key', 'k', '--weight', '0', '--root', r, ...ran], /--weight must be a whole number >= 1, got "0"/],
    ['--weight abc', (r) => ['run', '--key', 'k', '--weight', 'abc', '--root', r, ...ran], /--weight must be a whole number >= 1, got "abc"/],
    ['--weight above --limit', (r) => ['run', '--key', 'k', '--limit', '2', '--weight', '3', '--root', r, ...ran], /--weight 3 is above --limit 2: such a hold could never be granted/],
    ['--weight above the default limit', (r) => ['run', '--key', 'k', '--weight', '2', '--root', r, ...ran], /--weight 2 is above --limit 1/],
    ['--fd 0', (r) => ['run', '--key', 'k', '--fd', '0', '--root', r, ...ran], /--fd 0 is the command's stdin: choose 3 or more/],
    ['--fd 1', (r) => ['run', '--key', 'k', '--fd', '1', '--root', r, ...ran], /--fd 1 is the command's stdout: choose 3 or more/],
    ['--fd 2', (r) => ['run', '--key', 'k', '--fd', '2', '--root', r, ...ran], /--fd 2 is the command's stderr: choose 3 or more/],
    ['--fd abc', (r) => ['run', '--key', 'k', '--fd', 'abc', '--root', r, ...ran], /--fd must be a descriptor number from 3 to 1023, got "abc"/],
    ['--fd 1024', (r) => ['run', '--key', 'k', '--fd', '1024', '--root', r, ...ran], /--fd must be a descriptor number from 3 to 1023, got "1024"/],
    ['--fd -3', (r) => ['run', '--key', 'k', '--fd', '-3', '--root', r, ...ran], /--fd must be a descriptor number from 3 to 1023, got "-3"/],
    ['--fd with --no-inherit', (r) => ['run', '--key', 'k', '--fd', '5', '--no-inherit', '--root', r, ...ran], /--fd and --no-inherit exclude each other/],
    ['-c with -- CMD', (r) => ['run', '--key', 'k', '--root', r, '-c', 'true', ...ran], /-c and -- CMD exclude each other/],
    ['-c empty', (r) => ['run', '--key', 'k', '--root', r, '-c', ''], /--command must not be empty/],
    ['-c without a value', (r) => ['run', '--key', 'k', '--root', r, '-c'], /-c needs a value/],
    ['--on-lost on the file store without --no-inherit', (r) => ['run', '--key', 'k', '--on-lost', 'warn', '--root', r, ...ran], /--on-lost applies only where the wrapper holds the slot/],
    ['prune --idle 10x', (r) => ['prune', '--idle', '10x', '--root', r], /--idle must be a duration such as 30s, 10m, 2h, 1d or a number of seconds, got "10x"/],
    ['prune --idle -1', (r) => ['prune', '--idle', '-1', '--root', r], /--idle must be a duration/],
    ['prune with an argument', (r) => ['prune', '--root', r, 'extra'], /unexpected argument "extra" \(try: proclease prune --help\)/],
    ['prune with --key', (r) => ['prune', '--root', r, '--key', 'k'], /Unknown option '--key'/],
    ['unknown command', () => ['frobnicate'], /unknown command "frobnicate" \(try: proclease --help\)/],
    ['unknown top-level option', () => ['--bogus'], /unknown option "--bogus"/],
  ]

  it.each(cases)('%s', async (_name, args, message) => {
    const r = await runCli(args(root))
    expect(r.code, r.stderr).toBe(64)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^proclease: [^\n]*\n$/)
    expect(r.stderr).toMatch(message)
  })

  it('prints the overview on stderr when called without a command', async () => {
    const r = await runCli([])
    expect(r.code).toBe(64)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^Usage: proclease <command>/)
  })
})

describe('help and version', () => {
  it.each(['run', 'status', 'probe', 'reclaim', 'prune'])('%s --help shows usage and examples', async (cmd) => {
    for (const args of [[cmd, '--help'], [cmd, '-h'], ['help', cmd]]) {
      const r = await runCli(args)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^Usage: proclease ${cmd}`))
      expect(r.stdout).toContain('Examples:')
      expect(r.stdout).toContain(`proclease ${cmd} `)
    }
  })

  it('--help lists the commands', async () => {
    const r = await runCli(['--help'])
    expect(r.code).toBe(0)
    for (const cmd of ['run', 'status', 'probe', 'reclaim', 'prune']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'))
  })

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag])
      expect(r).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' })
    }
  })
})
