// A process whose only pending work is a PostgreSQL store call must stay alive until the call
// answers: the store lets its idle sessions go (S10), never one with a query in flight. Seen as a
// script that awaited acquireLease at top level and exited with status 0 before it held anything.
import { spawn } from 'node:child_process'
import { afterAll, afterEach, expect, it } from 'vitest'
import { leaseLib, removeLeaseLib } from '../../helpers/lease.js'
import { closeClients, connect, connectionString, freshSchema } from '../../helpers/pg.js'

afterEach(closeClients)
afterAll(removeLeaseLib)

function runNode(script: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

it('a process awaiting only its first acquireLease stays alive until it holds, and exits after close()', async () => {
  const admin = await connect()
  const options = { connectionString: connectionString(), schema: await freshSchema(admin) }
  const script = `
    const lib = require(${JSON.stringify(await leaseLib())})
    ;(async () => {
      const store = lib.postgresStore(${JSON.stringify(options)})
      const lease = await lib.acquireLease({ key: 'keep-alive', limit: 1, store })
      process.stdout.write('held ' + lease.held() + '\\n')
      await store.close()
      process.stdout.write('closed\\n')
    })()`
  const r = await runNode(script)
  expect(r).toMatchObject({ code: 0, stdout: 'held true\nclosed\n', stderr: '' })
})
