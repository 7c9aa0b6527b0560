// The addon's platform-neutral pieces: the macOS KERN_PROCARGS2 parser (compiled everywhere)
// and the advisory lock primitive, exercised across real processes.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { constants, endianness, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NativeBinding, bindingPath, defaultBinding, packageRoot } from '../lib/binding.js'
import { killAll, nodeChild } from './helpers/children.js'

const { EWOULDBLOCK, EBADF } = constants.errno

function native(): NativeBinding {
  if (!defaultBinding.binding) throw defaultBinding.error
  return defaultBinding.binding
}

describe('platform', () => {
  it('reports the implementation compiled in', () => {
    expect(native().platform()).toBe(process.platform === 'darwin' ? 'darwin' : process.platform === 'linux' ? 'linux' : 'unsupported')
  })
})

describe('parseProcargs2 (KERN_PROCARGS2 layout)', () => {
  // The layout XNU returns (docs/macos.md): int argc | exec path NUL | NUL padding | argv... | env...
  // The padding (exec_extract_strings in bsd/kern/kern_exec.c) rounds the exec path, NUL
  // included, up to the pointer size (8), counted from the path's first byte.
  /** int argc (host byte order) followed by the raw bytes. */
  function procargs(argc: number, ...parts: Array<string | Buffer>): Buffer {
    const head = Buffer.alloc(4)
    if (endianness() === 'LE') head.writeInt32LE(argc)
    else head.writeInt32BE(argc)
    return Buffer.concat([head, ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p))])
  }
  /** The exec path as the kernel lays it out: NUL-terminated, NUL-padded to a multiple of 8. */
  function execPath(path: string): string {
    const n = path.length + 1
    return `${path}\0${'\0'.repeat((8 - (n % 8)) % 8)}`
  }
  /** A whole KERN_PROCARGS2 answer: argc is argv.length. */
  function layout(path: string, argv: string[], env: string[] = []): Buffer {
    return procargs(argv.length, execPath(path), ...argv.map((a) => `${a}\0`), ...env.map((e) => `${e}\0`))
  }
  const parse = (buf: Buffer): string | null => native().parseProcargs2(buf)

  it('reads argv[0] of a normal buffer (argc 2, path, padding, argv, env)', () => {
    const buf = layout('/usr/local/bin/worker', ['worker', '--flag'], ['HOME=/Users/x', 'PATH=/bin'])
    expect(parse(buf)).toBe('worker')
  })

  it('reads argv[0] after every padding length (exec paths of 1 to 24 bytes)', () => {
    for (let n = 1; n <= 24; n++) {
      const path = `/${'p'.repeat(n - 1)}`
      expect(parse(layout(path, ['argv0-here', 'x'], ['A=1']))).toBe('argv0-here')
    }
  })

  it('reads argv[0] when the exec path needs no padding', () => {
    // '/bin/sh' + NUL is 8 bytes: argv[0] follows at once.
    expect(parse(procargs(1, '/bin/sh\0', 'sh\0'))).toBe('sh')
  })

  it('returns null for an empty argv[0], never argv[1]', () => {
    expect(parse(layout('/usr/local/bin/worker', ['', '--flag'], ['HOME=/Users/x']))).toBeNull()
    expect(parse(layout('/bin/sh', ['', 'second']))).toBeNull()
  })

  it('returns null for an empty argv[0] with argc 1, never an environment entry', () => {
    for (const path of ['/usr/local/bin/worker', '/bin/sh', '/opt/x']) {
      expect(parse(layout(path, [''], ['AWS_SECRET_ACCESS_KEY=hunter2', 'PATH=/bin']))).toBeNull()
    }
  })

  it('reads argv[0] of a buffer cut inside the environment', () => {
    const whole = layout('/usr/local/bin/worker', ['worker', '--flag'], ['HOME=/Users/x', 'PATH=/bin'])
    const cut = whole.subarray(0, whole.indexOf('HOME=') + 3)
    expect(parse(cut)).toBe('worker')
  })

  it('returns null when the buffer ends before argv[0]', () => {
    expect(parse(procargs(2, '/usr/bin/worker\0', '\0\0\0'))).toBeNull()
    expect(parse(procargs(2, '/usr/bin/worker\0'))).toBeNull()
    const whole = layout('/usr/bin/w', ['w'])
    expect(parse(whole.subarray(0, 4 + 12))).toBeNull() // inside the padding
  })

  it('returns null when the padding is not NUL (not the kernel layout)', () => {
    expect(parse(procargs(1, '/bin/x\0', 'X', 'argv0\0'))).toBeNull()
  })

  it('returns null for argc 0 and negative argc', () => {
    expect(parse(procargs(0, execPath('/bin/sh'), 'sh\0'))).toBeNull()
    expect(parse(procargs(-1, execPath('/bin/sh'), 'sh\0'))).toBeNull()
    expect(parse(procargs(-2147483648, execPath('/bin/sh'), 'sh\0'))).toBeNull()
  })

  it('returns null when the exec path is not terminated (layout lost)', () => {
    expect(parse(procargs(1, '/usr/bin/worker'))).toBeNull()
  })

  it('takes an argv[0] that runs to the end of the buffer without its NUL as is', () => {
    expect(parse(procargs(1, execPath('/bin/x'), 'sh-trunc'))).toBe('sh-trunc')
  })

  it('does not trust a huge argc: only argv[0] is read, within the buffer', () => {
    expect(parse(procargs(0x7fffffff, execPath('/bin/sh'), 'sh\0'))).toBe('sh')
  })

  it('returns null for an empty buffer and for one shorter than argc', () => {
    expect(parse(Buffer.alloc(0))).toBeNull()
    expect(parse(Buffer.from([1, 0, 0]))).toBeNull()
    expect(parse(procargs(1))).toBeNull()
  })

  it('truncates an argv[0] longer than 4096 bytes to 4095', () => {
    const long = 'a'.repeat(5000)
    const out = parse(procargs(1, execPath('/bin/x'), `${long}\0`, 'more\0'))
    expect(out).toBe('a'.repeat(4095))
  })

  it('keeps an argv[0] of exactly 4095 bytes whole', () => {
    const exact = 'b'.repeat(4095)
    expect(parse(procargs(1, execPath('/bin/x'), `${exact}\0`))).toBe(exact)
  })

  it('returns null for a non-buffer argument', () => {
    expect(native().parseProcargs2('not a buffer' as unknown as Buffer)).toBeNull()
    expect(native().parseProcargs2(undefined as unknown as Buffer)).toBeNull()
  })
})

describe('procargs2Truncated (a KERN_PROCARGS2 answer that filled its buffer)', () => {
  // sysctl_procargsx (bsd/kern/kern_sysctl.c) copies the tail of an area larger than the buffer
  // and returns exactly the buffer size: such an answer has lost its head, argc and path included.
  const truncated = (returned: number, capacity: number): boolean => native().procargs2Truncated(returned, capacity)

  it('takes an answer shorter than the buffer as whole', () => {
    expect(truncated(0, 1 << 20)).toBe(false)
    expect(truncated(4096, 1 << 20)).toBe(false)
    expect(truncated((1 << 20) - 1, 1 << 20)).toBe(false)
  })

  it('takes an answer of the buffer size or more as truncated', () => {
    expect(truncated(1 << 20, 1 << 20)).toBe(true)
    expect(truncated((1 << 20) + 1, 1 << 20)).toBe(true)
    expect(truncated(8, 8)).toBe(true)
  })

  it('takes nonsense (no buffer, negative, not a number) as truncated', () => {
    expect(truncated(0, 0)).toBe(true)
    expect(truncated(-1, 100)).toBe(true)
    expect(truncated(Number.NaN, 100)).toBe(true)
    expect(native().procargs2Truncated(undefined as unknown as number, 100)).toBe(true)
  })
})

describe('lockExclusiveNB / unlock (flock)', () => {
  let dir: string
  let file: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'proclease-lock-'))
    file = join(dir, 'gate')
    writeFileSync(file, '')
  })
  afterAll(async () => {
    try {
      await killAll()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('is refused while another process holds it and granted once the kernel drops it on SIGKILL', async () => {
    const addon = bindingPath(packageRoot)
    expect(addon).not.toBeNull()
    const c = nodeChild(
      `const b = require(process.argv[1]); const fd = require('fs').openSync(process.argv[2], 'r+');
       const rc = b.lockExclusiveNB(fd); console.log(rc === 0 ? 'locked' : 'lock failed ' + rc)`,
      [addon as string, file],
    )
    await c.expectLine('locked')
    const fd = openSync(file, 'r+')
    try {
      expect(native().lockExclusiveNB(fd)).toBe(EWOULDBLOCK)
      // Refusal is not sticky and does not block: asking again gives the same answer.
      expect(native().lockExclusiveNB(fd)).toBe(EWOULDBLOCK)
      c.proc.kill('SIGKILL')
      const exit = await c.exited
      expect(exit.signal).toBe('SIGKILL')
      expect(native().lockExclusiveNB(fd)).toBe(0)
      expect(native().unlock(fd)).toBe(0)
    } finally {
      closeSync(fd)
    }
  })

  it('binds to the open file description: a second open in the same process is refused', () => {
    const a = openSync(file, 'r+')
    const b = openSync(file, 'r+')
    try {
      expect(native().lockExclusiveNB(a)).toBe(0)
      // Re-locking the same description is not an error.
      expect(native().lockExclusiveNB(a)).toBe(0)
      expect(native().lockExclusiveNB(b)).toBe(EWOULDBLOCK)
      expect(native().unlock(a)).toBe(0)
      expect(native().lockExclusiveNB(b)).toBe(0)
      expect(native().lockExclusiveNB(a)).toBe(EWOULDBLOCK)
    } finally {
      closeSync(a)
      closeSync(b)
    }
  })

  it('is released when its descriptor is closed', () => {
    const a = openSync(file, 'r+')
    const b = openSync(file, 'r+')
    try {
      expect(native().lockExclusiveNB(a)).toBe(0)
      expect(native().lockExclusiveNB(b)).toBe(EWOULDBLOCK)
      closeSync(a)
      expect(native().lockExclusiveNB(b)).toBe(0)
    } finally {
      closeSync(b)
    }
  })

  it('unlocking a descriptor that holds nothing succeeds', () => {
    const a = openSync(file, 'r+')
    try {
      expect(native().unlock(a)).toBe(0)
    } finally {
      closeSync(a)
    }
  })

  it.each([
    ['-1', -1],
    ['a descriptor number that is not open', 1_000_000],
    ['1.5', 1.5],
    ['NaN', Number.NaN],
    ['2**31', 2 ** 31],
    ["'3' (a string)", '3'],
    ['undefined', undefined],
  ])('an invalid descriptor (%s) gives EBADF', (_label, fd) => {
    expect(native().lockExclusiveNB(fd as number)).toBe(EBADF)
    expect(native().unlock(fd as number)).toBe(EBADF)
  })
})
