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
  /** int argc (host byte order) followed by the raw bytes. */
  function procargs(argc: number, ...parts: Array<string | Buffer>): Buffer {
    const head = Buffer.alloc(4)
    if (endianness() === 'LE') head.writeInt32LE(argc)
    else head.writeInt32BE(argc)
    return Buffer.concat([head, ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p))])
  }
  const parse = (buf: Buffer): string | null => native().parseProcargs2(buf)

  it('reads argv[0] of a normal buffer (argc 2, path, padding, argv, env)', () => {
    const buf = procargs(2, '/usr/local/bin/worker\0', '\0\0\0\0\0\0\0', 'worker\0', '--flag\0', 'HOME=/Users/x\0PATH=/bin\0')
    expect(parse(buf)).toBe('worker')
  })

  it('reads argv[0] when there is no padding after the exec path', () => {
    expect(parse(procargs(1, '/bin/sh\0', 'sh\0'))).toBe('sh')
  })

  it('returns null when the buffer ends before argv[0]', () => {
    expect(parse(procargs(2, '/usr/bin/worker\0', '\0\0\0'))).toBeNull()
    expect(parse(procargs(2, '/usr/bin/worker\0'))).toBeNull()
  })

  it('returns null for argc 0 and negative argc', () => {
    expect(parse(procargs(0, '/bin/sh\0', '\0\0', 'sh\0'))).toBeNull()
    expect(parse(procargs(-1, '/bin/sh\0', '\0\0', 'sh\0'))).toBeNull()
    expect(parse(procargs(-2147483648, '/bin/sh\0', '\0\0', 'sh\0'))).toBeNull()
  })

  it('returns null when the exec path is not terminated (layout lost)', () => {
    expect(parse(procargs(1, '/usr/bin/worker'))).toBeNull()
  })

  it('takes an argv[0] that runs to the end of the buffer without its NUL as is', () => {
    expect(parse(procargs(1, '/bin/sh\0', '\0\0', 'sh-trunc'))).toBe('sh-trunc')
  })

  it('does not trust a huge argc: only argv[0] is read, within the buffer', () => {
    expect(parse(procargs(0x7fffffff, '/bin/sh\0', '\0', 'sh\0'))).toBe('sh')
  })

  it('returns null for an empty buffer and for one shorter than argc', () => {
    expect(parse(Buffer.alloc(0))).toBeNull()
    expect(parse(Buffer.from([1, 0, 0]))).toBeNull()
    expect(parse(procargs(1))).toBeNull()
  })

  it('truncates an argv[0] longer than 4096 bytes to 4095', () => {
    const long = 'a'.repeat(5000)
    const out = parse(procargs(1, '/bin/x\0', '\0', `${long}\0`, 'more\0'))
    expect(out).toBe('a'.repeat(4095))
  })

  it('keeps an argv[0] of exactly 4095 bytes whole', () => {
    const exact = 'b'.repeat(4095)
    expect(parse(procargs(1, '/bin/x\0', '\0', `${exact}\0`))).toBe(exact)
  })

  it('returns null for a non-buffer argument', () => {
    expect(native().parseProcargs2('not a buffer' as unknown as Buffer)).toBeNull()
    expect(native().parseProcargs2(undefined as unknown as Buffer)).toBeNull()
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
