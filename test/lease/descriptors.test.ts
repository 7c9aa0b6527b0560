// Issue 8 defect 12: judging holders needs a bounded number of descriptors. With 300 live holders
// a claimer or inspector limited to 100 open files still works (no EMFILE).
import { spawn } from 'node:child_process'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { agent, cleanup, freshRoot, holdIn, leaseLib, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const HOLDERS = 300

/** Runs a script in a node whose open-file limit is `nofile`; resolves with its JSON output. */
function limited(nofile: number, lib: string, script: string, arg: unknown): Promise<unknown> {
  const code = `const lib = require(${JSON.stringify(lib)}); const arg = ${JSON.stringify(arg)};
    (async () => { ${script} })().then((r) => console.log(JSON.stringify({ ok: r })),
      (e) => console.log(JSON.stringify({ err: e.code ?? String(e), message: e.message })))`
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', `ulimit -n ${nofile} && exec "$0" -e "$1"`, process.execPath, code], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    p.once('error', reject)
    p.once('exit', () => {
      try {
        resolve(JSON.parse(out))
      } catch {
        reject(new Error(`no JSON from limited child: ${out}`))
      }
    })
  })
}

describe(`${HOLDERS} live holders, a judge limited to 100 open files`, () => {
  it('claims, inspects and sweeps without running out of descriptors', async () => {
    const { root } = freshRoot()
    const holder = await agent()
    const opts = { key: 'many', limit: HOLDERS + 1, lockRoot: root }
    for (let i = 0; i < HOLDERS; i++) await holdIn(holder, opts)
    const lib = await leaseLib()

    const inspected = await limited(100, lib, 'return (await lib.inspectLeases(arg)).active', opts)
    expect(inspected).toEqual({ ok: HOLDERS })
    const swept = await limited(100, lib, 'return (await lib.reclaimLeases(arg)).status.active', opts)
    expect(swept).toEqual({ ok: HOLDERS })
    const claimed = await limited(100, lib, 'const l = await lib.tryAcquireLease(arg); const s = l && l.slot; await l.release(); return s', opts)
    expect(claimed).toEqual({ ok: HOLDERS })
    const full = await limited(100, lib, 'return await lib.tryAcquireLease({ ...arg, limit: arg.limit - 1 })', opts)
    expect(full).toEqual({ ok: null })
  }, 120_000)
})
