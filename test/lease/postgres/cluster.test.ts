// scripts/pg/cluster.mjs: starts a working server, and leaves nothing behind — no process, no
// directory — whether stopped, or whether its owner process was SIGKILLed.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { type Cluster, readPostmasterPid, start, stop } from '../../../scripts/pg/cluster.mjs'
import { Child, killAll } from '../../helpers/children.js'
import { pollUntil } from '../../helpers/kernel.js'
import { ROOT } from '../../helpers/pg.js'

afterEach(killAll)

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true
    throw err
  }
  // A zombie (its reaper may be a pid 1 that never reaps) is not running either.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true
    throw err
  }
}

describe('cluster.mjs', () => {
  it('start gives a working server on a unix socket; stop removes the process and the directory', async () => {
    const c: Cluster = await start()
    const client = new pg.Client({ connectionString: c.connectionString })
    await client.connect()
    const r = await client.query<{ v: string; listen: string }>(
      `SELECT current_setting('server_version_num') AS v, current_setting('listen_addresses') AS listen`,
    )
    await client.end()
    expect(Number(r.rows[0]?.v)).toBeGreaterThanOrEqual(150000)
    expect(r.rows[0]?.listen).toBe('')
    expect(existsSync(join(c.socketDir, `.s.PGSQL.${c.port}`))).toBe(true)
    await stop(c)
    expect(gone(c.pid)).toBe(true)
    expect(existsSync(c.dir)).toBe(false)
  })

  it('a SIGKILLed owner leaves no server and no directory behind (the guardian cleans up)', async () => {
    const script = `import('${join(ROOT, 'scripts', 'pg', 'cluster.mjs')}').then(async (m) => {
      const c = await m.start(); console.log(JSON.stringify(c)); setInterval(() => {}, 1000) })`
    const owner = new Child(process.execPath, ['--input-type=module', '-e', script])
    const c = JSON.parse(await owner.nextLine()) as Cluster
    expect(readPostmasterPid(c.dataDir)?.status).toBe('ready')
    await owner.kill()
    await pollUntil('the guardian to stop the server and remove its directory', () => !existsSync(c.dir) && gone(c.pid), 30_000)
  })
})
