// The partition tests' network namespace helper leaves nothing behind: remove() deletes the pair
// and the namespace, and a process that dies without removing them (SIGKILL) has its guardian
// delete them.
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createNetns } from '../../../scripts/pg/netns.mjs'
import { REPO } from '../../helpers/lease.js'
import { pollUntilAsync } from './fault-kit.js'

const isRoot = process.getuid?.() === 0

function present(name: string): boolean {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
  const link = spawnSync('ip', ['link', 'show', `${name}h`], { stdio: 'ignore' }).status === 0
  return list.split('\n').some((l) => l.split(' ')[0] === name) || link
}

describe('scripts/pg/netns.mjs', () => {
  it.runIf(isRoot)('remove() deletes the veth pair and the namespace (needs root: network namespaces)', () => {
    const n = createNetns()
    expect(n.exists()).toBe(true)
    n.partition()
    n.heal()
    n.remove()
    expect(n.exists()).toBe(false)
  })

  it.runIf(isRoot)('a SIGKILLed owner leaves no namespace and no veth behind (the guardian deletes them) (needs root: network namespaces)', async () => {
    const script = `import { createNetns } from ${JSON.stringify(join(REPO, 'scripts', 'pg', 'netns.mjs'))}
const n = createNetns(); process.stdout.write(n.name + '\\n'); setInterval(() => {}, 1000)`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const name = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))
      child.once('exit', (code) => reject(new Error(`exited ${code}`)))
    })
    expect(present(name)).toBe(true)
    child.kill('SIGKILL')
    await pollUntilAsync(`namespace ${name} and its pair to be deleted`, async () => !present(name))
  })

  it.skipIf(isRoot)('skipped: network namespaces need root', () => undefined)
})
