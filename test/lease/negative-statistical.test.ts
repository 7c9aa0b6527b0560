// Statistical negative controls: free-running races against an engine without its gate. Whether
// a given run hits the race window depends on scheduling, so these are opt-in
// (PROCLEASE_NEGATIVE=1 npx vitest run test/lease/negative-statistical.test.ts) and repeat until
// the broken engine is caught. The deterministic negative controls (forced interleavings, fault
// seams that always misbehave) live in the default suite next to the tests they validate.
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { keyDirName } from '../../lib/lease/root.js'
import { type Interval, JsonChild, agent, cleanup, freshRoot, holdIn, leaseLib, peakConcurrency, removeLeaseLib } from '../helpers/lease.js'

afterEach(cleanup)
afterAll(removeLeaseLib)

const enabled = process.env.PROCLEASE_NEGATIVE === '1'

describe.runIf(enabled)('statistical negative controls (noGate)', () => {
  it('the interval check catches over-admission by an engine without a gate', async () => {
    const lib = await leaseLib()
    let caughtIn = 0
    for (let attempt = 1; attempt <= 10 && caughtIn === 0; attempt++) {
      const { root } = freshRoot()
      const cfg = { root, key: 'peak', limit: 1, cycles: 30, holdMs: 0, faults: { noGate: true } }
      const kids = Array.from({ length: 6 }, () => new JsonChild('contender.mjs', [lib, JSON.stringify(cfg)]))
      await Promise.all(kids.map((k) => k.expect('ready')))
      for (const k of kids) k.send('go')
      const intervals: Interval[] = []
      await Promise.all(
        kids.map(async (k, n) => {
          let open: bigint | null = null
          for (;;) {
            const m = await k.next()
            if (m.ev === 'acq') open = BigInt(m.t as string)
            else if (m.ev === 'rel' && open !== null) intervals.push({ who: `p${n}`, start: open, end: BigInt(m.t as string) })
            else if (m.ev === 'done') return
          }
        }),
      )
      if (peakConcurrency(intervals) > cfg.limit) caughtIn = attempt
      await cleanup()
    }
    console.log(`noGate over-admission caught in run ${caughtIn}`)
    expect(caughtIn).toBeGreaterThan(0)
  })

  it('two free-running contenders both win a dead slot without the gate, sometimes', async () => {
    const { root } = freshRoot()
    const [a, b] = await Promise.all([agent(), agent()])
    const cmd = { op: 'acquire', mode: 'try', opts: { key: 'race', limit: 1, lockRoot: root }, faults: { noGate: true } }
    let doubles = 0
    let rounds = 0
    for (; rounds < 200 && doubles === 0; rounds++) {
      const victim = await agent()
      await holdIn(victim, { key: 'race', limit: 1, lockRoot: root })
      await victim.kill()
      a.send(cmd)
      b.send(cmd)
      const replies = await Promise.all([a.next(), b.next()])
      if (replies.every((r) => r.ev === 'acquired')) doubles++
      for (const [i, c] of [a, b].entries()) if (replies[i]?.ev === 'acquired') await c.call({ op: 'release' })
      // A double win leaves one record behind (one overwrote the other); clear it for the next round.
      fs.rmSync(join(root, keyDirName('race'), 'slot-0'), { force: true })
    }
    console.log(`noGate double win after ${rounds} rounds (${doubles} doubles)`)
    expect(doubles).toBeGreaterThan(0)
  })
})
