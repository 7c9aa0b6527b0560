// Issue 8, defect 5: one Ctrl-C must reach the command under `proclease run` exactly once. The
// terminal signals its whole foreground process group, which holds the wrapper and the command,
// so a wrapper that forwards the kernel's SIGINT delivers it twice (terraform, docker compose
// and pytest take a second interrupt as "abort now"). A signal that a process sends to the
// wrapper alone (kill -INT <wrapper>) must still reach the command, once.
//
// The terminal is a real pseudo-terminal made by python3's pty module (CI has no TTY of its own):
// the wrapper is the session leader with the pty as controlling terminal, and Ctrl-C is the
// byte 0x03 written to the master. The command counts SIGINTs into a file and exits on SIGTERM,
// which the test sends to the wrapper (a process signal, forwarded) only after the command has
// logged its first SIGINT: the wrapper handles its signals in arrival order, and a pending SIGINT
// is delivered before a pending SIGTERM, so any second SIGINT is logged before "TERM".
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { type NativeBinding, defaultBinding } from '../../lib/binding.js'
import { SignalOrigins, mustForward } from '../../lib/cli/signal-origin.js'
import { unsupportedBinding } from '../helpers/bindings.js'
import { pollUntil } from '../helpers/kernel.js'
import { CLI, Proc, ROOT, setupCliTests } from './harness.js'

let root = ''
setupCliTests((r) => {
  root = r
})

// argv: the command to run on the pty. stdin: "ctrl-c" (write 0x03 to the master), "hangup"
// (close the master), "wait" (wait for the command to exit). stdout: "pid N", "sent", "closed",
// "exit CODE". The master's output is drained (a full pty would block the wrapper) and copied to
// stderr for diagnosis; one thread does both, so closing the master really hangs the line up.
const PTY = String.raw`
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
print('pid %d' % pid, flush=True)
stdin = sys.stdin.fileno()
pending = b''
waiting = False
reading = True
while not waiting:
    fds = [stdin] + ([fd] if fd is not None and reading else [])
    ready, _, _ = select.select(fds, [], [])
    if fd is not None and fd in ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b''
        if data:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
        else:
            # No slave open (EIO): keep the master, or the line would hang up.
            reading = False
    if stdin in ready:
        chunk = os.read(stdin, 4096)
        if not chunk:
            break
        pending += chunk
        while b'\n' in pending:
            line, pending = pending.split(b'\n', 1)
            cmd = line.strip()
            if cmd == b'ctrl-c':
                os.write(fd, b'\x03')
                print('sent', flush=True)
            elif cmd == b'hangup':
                os.close(fd)
                fd = None
                print('closed', flush=True)
            elif cmd == b'wait':
                waiting = True
_, status = os.waitpid(pid, 0)
print('exit %d' % os.waitstatus_to_exitcode(status), flush=True)
`

// The command: one line per SIGINT or SIGHUP; "TERM" and exit 0 on SIGTERM.
const COUNTER = `
const fs = require('fs')
const log = process.argv[1]
process.on('SIGINT', () => fs.appendFileSync(log, 'INT\\n'))
process.on('SIGHUP', () => fs.appendFileSync(log, 'HUP\\n'))
process.on('SIGTERM', () => { fs.appendFileSync(log, 'TERM\\n'); process.exit(0) })
fs.appendFileSync(log, 'ready\\n')
setInterval(() => {}, 1 << 30)
`

function logLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0) : []
}

/**
 * Starts the wrapper on a new pty (session leader, pty as controlling terminal). With
 * `stdioOffPty` its stdio (and the command's) is /dev/null instead of the pty: Node 20 aborts at
 * exit when it cannot restore a hung-up terminal (ResetStdio, nodejs/node#51519), which a test of
 * a hangup must not mistake for the wrapper's doing.
 */
async function runOnPty(log: string, stdioOffPty = false): Promise<{ py: Proc; wrapper: number }> {
  const args = [CLI, 'run', '--key', 'sig', '--root', root, '--', process.execPath, '-e', COUNTER, log]
  const command = stdioOffPty
    ? ['/bin/sh', '-c', 'exec "$@" </dev/null >/dev/null 2>&1', 'sh', process.execPath, ...args]
    : [process.execPath, ...args]
  const py = new Proc('python3', ['-c', PTY, ...command])
  const line = await py.waitLine(/^pid \d+$/)
  const wrapper = Number(line.slice(4))
  await pollUntil('the command to start', () => logLines(log).includes('ready'))
  return { py, wrapper }
}

/** Ends the command through the wrapper (SIGTERM, forwarded) and returns what it logged. */
async function finish(py: Proc, wrapper: number, log: string): Promise<string[]> {
  process.kill(wrapper, 'SIGTERM')
  await pollUntil('the command to log SIGTERM', () => logLines(log).includes('TERM'))
  py.proc.stdin?.write('wait\n')
  expect(await py.waitLine(/^exit /)).toBe('exit 0')
  return logLines(log)
}

describe('run on a terminal', () => {
  it('a terminal Ctrl-C reaches the command exactly once', async () => {
    const log = join(root, '..', 'ctrl-c.log')
    const { py, wrapper } = await runOnPty(log)
    py.proc.stdin?.write('ctrl-c\n')
    await py.waitLine(/^sent$/)
    await pollUntil('the command to log SIGINT', () => logLines(log).includes('INT'))
    expect(await finish(py, wrapper, log)).toEqual(['ready', 'INT', 'TERM'])
  })

  it('kill -INT <wrapper> reaches the command exactly once', async () => {
    const log = join(root, '..', 'kill.log')
    const { py, wrapper } = await runOnPty(log)
    process.kill(wrapper, 'SIGINT')
    await pollUntil('the command to log SIGINT', () => logLines(log).includes('INT'))
    expect(await finish(py, wrapper, log)).toEqual(['ready', 'INT', 'TERM'])
  })

  it('a hangup reaches the command once: the wrapper, leading the session, forwards its SIGHUP', async () => {
    // Closing the master hangs the terminal up: the kernel sends SIGHUP to the session leader
    // (the wrapper here) alone; the command's group would get one only once the leader exits.
    const log = join(root, '..', 'hangup.log')
    const { py, wrapper } = await runOnPty(log, true)
    py.proc.stdin?.write('hangup\n')
    await py.waitLine(/^closed$/)
    await pollUntil('the command to log SIGHUP', () => logLines(log).includes('HUP'))
    expect(await finish(py, wrapper, log)).toEqual(['ready', 'HUP', 'TERM'])
  })

  it('two Ctrl-Cs reach the command twice, not four times', async () => {
    const log = join(root, '..', 'twice.log')
    const { py, wrapper } = await runOnPty(log)
    for (let i = 1; i <= 2; i++) {
      py.proc.stdin?.write('ctrl-c\n')
      await py.waitLine(/^sent$/)
      await pollUntil(`SIGINT ${i} to be logged`, () => logLines(log).filter((l) => l === 'INT').length >= i)
    }
    expect(await finish(py, wrapper, log)).toEqual(['ready', 'INT', 'INT', 'TERM'])
  })
})

describe('mustForward', () => {
  const shared = { commandSharesGroup: true, wrapperLeadsSession: false }
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('forwards %s sent by a process or of unknown origin', (signal) => {
    expect(mustForward(signal, 'process', shared)).toBe(true)
    expect(mustForward(signal, 'unknown', shared)).toBe(true)
  })

  it('does not forward what the kernel sent to the group the command shares', () => {
    expect(mustForward('SIGINT', 'kernel', shared)).toBe(false)
    expect(mustForward('SIGHUP', 'kernel', shared)).toBe(false)
  })

  it('forwards what the kernel sent when the command left the group', () => {
    expect(mustForward('SIGINT', 'kernel', { ...shared, commandSharesGroup: false })).toBe(true)
  })

  it("forwards a hangup's SIGHUP to the command of a session-leading wrapper (it went to the leader alone)", () => {
    expect(mustForward('SIGHUP', 'kernel', { ...shared, wrapperLeadsSession: true })).toBe(true)
    expect(mustForward('SIGINT', 'kernel', { ...shared, wrapperLeadsSession: true })).toBe(false)
  })
})

describe('SignalOrigins', () => {
  /** A binding whose counters the test sets. */
  function counting(): { binding: NativeBinding; counts: { kernel: number; process: number; other: number }; installs: number[] } {
    const counts = { kernel: 0, process: 0, other: 0 }
    const installs: number[] = []
    const binding: NativeBinding = {
      ...unsupportedBinding(),
      signalOriginInstall: (signo) => (installs.push(signo), 0),
      signalOriginCounts: () => ({ ...counts }),
    }
    return { binding, counts, installs }
  }

  it('gives each delivery its origin once, a process first', () => {
    const { binding, counts, installs } = counting()
    counts.kernel = 5 // before watch(): not ours
    const o = new SignalOrigins(binding)
    expect(o.watch('SIGINT')).toBe(true)
    expect(installs).toEqual([constants.signals.SIGINT])
    counts.kernel++
    counts.process++
    expect(o.take('SIGINT')).toBe('process')
    expect(o.take('SIGINT')).toBe('kernel')
    counts.other++
    expect(o.take('SIGINT')).toBe('unknown')
  })

  it('knows nothing of a signal it does not watch, or without the addon', () => {
    const { binding, counts } = counting()
    const o = new SignalOrigins(binding)
    counts.kernel++
    expect(o.take('SIGTERM')).toBe('unknown')
    const none = new SignalOrigins(null)
    expect(none.watch('SIGINT')).toBe(false)
    expect(none.take('SIGINT')).toBe('unknown')
    expect(none.groups(process.pid)).toEqual({ commandSharesGroup: false, wrapperLeadsSession: false })
  })

  it('knows nothing where the recorder cannot be installed (macOS, no handler)', () => {
    const o = new SignalOrigins({ ...unsupportedBinding() })
    expect(o.watch('SIGINT')).toBe(false)
    expect(o.take('SIGINT')).toBe('unknown')
  })

  it('reads the real process groups', () => {
    const o = new SignalOrigins(defaultBinding.binding)
    expect(o.groups(process.pid).commandSharesGroup).toBe(true)
    // A pid that is gone has no group: never "shares" it.
    expect(o.groups(2 ** 31 - 1).commandSharesGroup).toBe(false)
  })
})

describe('the signal origin recorder (addon), in a real process', () => {
  // A child that installs the recorder and signals itself with kill(2): the listener still runs
  // (the recorder chains to Node's handler) and the delivery is counted as sent by a process.
  const SELF = `
const b = require(process.argv[1])(process.argv[2])
const { SIGINT, SIGHUP } = require('os').constants.signals
const out = []
const alive = setInterval(() => {}, 1 << 30) // signal handles do not keep the loop alive
out.push(b.signalOriginInstall(SIGHUP)) // no handler to chain to: ESRCH
process.on('SIGINT', () => {
  clearInterval(alive)
  out.push(JSON.stringify(b.signalOriginCounts(SIGINT)))
  process.removeAllListeners('SIGINT') // libuv puts SIG_DFL back: the recorder is gone
  out.push(b.signalOriginInstall(SIGINT))
  console.log(out.join(' '))
})
out.push(b.signalOriginInstall(SIGINT), b.signalOriginInstall(SIGINT)) // installed, then already in front
process.kill(process.pid, 'SIGINT')
`

  it.runIf(process.platform === 'linux')('counts kill(2) as a process, chains to the listener, and follows libuv', () => {
    const loader = createRequire(join(ROOT, 'package.json')).resolve('node-gyp-build')
    const r = spawnSync(process.execPath, ['-e', SELF, loader, ROOT], { encoding: 'utf8' })
    const { ESRCH } = constants.errno
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' })
    expect(r.stdout.trim()).toBe(`${ESRCH} 0 0 {"kernel":0,"process":1,"other":0} ${ESRCH}`)
  })

  it('refuses signals out of range and SIGKILL', () => {
    const b = defaultBinding.binding
    if (!b) throw defaultBinding.error
    const { EINVAL } = constants.errno
    for (const signo of [0, -1, 65, 1.5, Number.NaN, constants.signals.SIGKILL]) {
      expect(b.signalOriginInstall(signo)).toBe(EINVAL)
    }
    expect(b.signalOriginCounts(0)).toBeNull()
  })
})
