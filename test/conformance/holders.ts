// Holders the conformance suite drives: real processes (test/lease/fixtures/agent.mjs opening the
// store from its JSON spec) for stores shared across processes, or holders simulated in this
// process for the in-memory reference store. Both answer in the agent's message shapes.
import * as fs from 'node:fs'
import { join } from 'node:path'
import type { HolderRecord } from '../../lib/classify.js'
import type { AcquireHooks, Lease } from '../../lib/lease/engine.js'
import { type JsonChild, type Msg, acquireInStore, agent, freshRoot, procState, until } from '../helpers/lease.js'

export interface HoldOpts {
  key: string
  limit: number
  waitMs?: number
  metadata?: Record<string, string | number | boolean>
  weight?: number
  fair?: boolean
}

/** How a queued acquire reports itself (see Holder.enqueue). */
export interface QueueOpts {
  /** Names the waiter in the log. */
  tag: string
  /**
   * A file the waiter appends `arrived <tag>` to at its first busy answer and `granted <tag>` to
   * inside its hold: an order log written by the waiters themselves, one append per line.
   */
  log?: string
  /** Release as soon as the grant is logged, so hand-offs run on without the test. */
  releaseAtOnce?: boolean
}

/** An acquire left running in a holder. */
export interface Pending {
  /** Resolves at the acquire's first busy answer (its place taken); rejects if it ended before. */
  queued: Promise<void>
  /** The acquire's reply (`acquired`, `null`, `error`); never settles if the holder is killed first. */
  result: Promise<Msg>
  /** Aborts the acquire through its signal (the reply is then an `aborted` error). */
  abort(): void
}

export interface AcquireExtra {
  mode?: 'wait' | 'try'
  /** Record these identity fields instead of the holder's own. */
  holder?: Partial<HolderRecord>
}

/** A claim stopped under the key's gate, after judging and counting (the afterScan seam). */
export interface PausedClaim {
  resume(): void
  /** The acquire's reply once resumed. */
  result: Promise<Msg>
}

/** One holder: a process, or a stand-in for one. Replies are the agent's (`acquired`, `null`, `error`). */
export interface Holder {
  readonly pid: number
  acquire(opts: HoldOpts, extra?: AcquireExtra): Promise<Msg>
  /** Starts an acquire that pauses mid-claim; resolves once it is paused. */
  acquirePaused(opts: HoldOpts): Promise<PausedClaim>
  /**
   * Starts a waiting acquire and returns at once. Until its reply, the holder takes no other
   * command but abort, kill and stop.
   */
  enqueue(opts: HoldOpts, q: QueueOpts): Pending
  /** Releases lease `i` (default: the latest). */
  release(i?: number): Promise<boolean>
  /** Dies without a word (SIGKILL): nothing is released. */
  kill(): Promise<void>
  /** Stops without dying (SIGSTOP): still alive, does nothing. */
  stop(): Promise<void>
  /** Ends normally: what the library does at exit happens. */
  exit(): Promise<void>
}

/** Starts holders for a spec. */
export type HolderFactory = () => Promise<Holder>

/** Agents that open the store from a JSON spec. */
export function processHolders(spec: object): HolderFactory {
  return async () => new ProcessHolder(await agent(), spec)
}

class ProcessHolder implements Holder {
  constructor(
    private readonly c: JsonChild,
    private readonly spec: object,
  ) {}

  get pid(): number {
    return this.c.pid
  }

  acquire(opts: HoldOpts, extra: AcquireExtra = {}): Promise<Msg> {
    return acquireInStore(this.c, this.spec, opts, extra)
  }

  enqueue(opts: HoldOpts, q: QueueOpts): Pending {
    this.c.send({ op: 'enqueue', spec: this.spec, opts, tag: q.tag, log: q.log ?? null, releaseAtOnce: q.releaseAtOnce === true })
    const first = this.c.next()
    const queued = first.then((m) => {
      if (m.ev !== 'queued') throw new Error(`acquire of ${q.tag} ended before it waited: ${JSON.stringify(m)}`)
    })
    const result = first.then((m) => (m.ev === 'queued' ? this.c.next() : m))
    // Observed by the tests that care; a killed waiter's reply never comes.
    queued.catch(() => {})
    result.catch(() => {})
    return { queued, result, abort: () => this.c.send({ op: 'abort', tag: q.tag }) }
  }

  async acquirePaused(opts: HoldOpts): Promise<PausedClaim> {
    const { base } = freshRoot()
    const file = join(base, 'resume')
    // Sent, not called: the first line back is the pause, the reply comes after the resume.
    this.c.send({ op: 'acquire', spec: this.spec, opts, mode: 'try', pause: { at: 'afterScan', file } })
    await this.c.expect('paused')
    return { resume: () => fs.writeFileSync(file, ''), result: this.c.next() }
  }

  async release(i?: number): Promise<boolean> {
    const m = await this.c.call({ op: 'release', ...(i === undefined ? {} : { i }) })
    if (m.ev !== 'released') throw new Error(`release failed in child: ${JSON.stringify(m)}; stderr: ${this.c.stderr}`)
    return m.ok as boolean
  }

  kill(): Promise<void> {
    return this.c.kill()
  }

  async stop(): Promise<void> {
    process.kill(this.c.pid, 'SIGSTOP')
    await until('the holder to stop', () => procState(this.c.pid) === 'T')
  }

  async exit(): Promise<void> {
    this.c.send({ op: 'exit', code: 0 })
    const how = await this.c.exited
    if (how.code !== 0) throw new Error(`holder exited ${JSON.stringify(how)}; stderr: ${this.c.stderr}`)
  }
}

/** What a simulated holder needs from its target: a way to claim as someone, and to die. */
export interface LocalWorld {
  /** A fresh pid-like number no real process of this test has. */
  newPid(): number
  acquireAs(
    holder: HolderRecord,
    opts: HoldOpts & { signal?: AbortSignal },
    mode: 'wait' | 'try',
    pause?: { onPaused: () => void; until: Promise<void> },
    hooks?: AcquireHooks,
  ): Promise<Lease | null>
  /** From now on the store's witness proves this pid gone, and its store never answers again. */
  kill(pid: number): void
  self(): HolderRecord
}

/** Holders simulated in this process, for a store that lives in one process. */
export function localHolders(world: LocalWorld): HolderFactory {
  return async () => new LocalHolder(world)
}

const hr = (): string => process.hrtime.bigint().toString()

class LocalHolder implements Holder {
  readonly pid: number
  private readonly leases: Lease[] = []
  private dead = false

  constructor(private readonly world: LocalWorld) {
    this.pid = world.newPid()
  }

  private identity(over?: Partial<HolderRecord>): HolderRecord {
    return { ...this.world.self(), pid: this.pid, ...over }
  }

  private reply(lease: Lease | null): Msg {
    if (lease === null) return { ev: 'null' }
    this.leases.push(lease)
    return { ev: 'acquired', i: this.leases.length - 1, t: hr(), slot: lease.slot, fence: lease.fence, token: lease.token, pid: this.pid, weight: lease.weight, recovered: lease.recovered }
  }

  private alive(): void {
    if (this.dead) throw new Error(`holder ${this.pid} is dead`)
  }

  async acquire(opts: HoldOpts, extra: AcquireExtra = {}): Promise<Msg> {
    this.alive()
    try {
      return this.reply(await this.world.acquireAs(this.identity(extra.holder), opts, extra.mode ?? 'wait'))
    } catch (err) {
      const e = err as { code?: string; name?: string; message?: string }
      return { ev: 'error', code: e.code ?? null, name: e.name, message: e.message }
    }
  }

  enqueue(opts: HoldOpts, q: QueueOpts): Pending {
    this.alive()
    const log = (what: string): void => {
      if (q.log) fs.appendFileSync(q.log, `${what} ${q.tag}\n`)
    }
    const ac = new AbortController()
    let onQueued!: () => void
    let notQueued!: (err: Error) => void
    const queued = new Promise<void>((res, rej) => {
      onQueued = res
      notQueued = rej
    })
    let first = true
    const onBusy = (): void => {
      if (!first) return
      first = false
      log('arrived')
      onQueued()
    }
    const result = this.world
      .acquireAs(this.identity(), { ...opts, signal: ac.signal }, 'wait', undefined, { onBusy })
      .then(
        async (lease) => {
          if (lease !== null) log('granted')
          const m = this.reply(lease)
          if (lease !== null && q.releaseAtOnce === true) await lease.release()
          return m
        },
        (err: { code?: string; name?: string; message?: string }): Msg => ({ ev: 'error', code: err.code ?? null, name: err.name, message: err.message }),
      )
      .then((m) => {
        notQueued(new Error(`acquire of ${q.tag} ended before it waited: ${JSON.stringify(m)}`))
        return m
      })
    queued.catch(() => {})
    return { queued, result, abort: () => ac.abort(new Error('aborted by the test')) }
  }

  async acquirePaused(opts: HoldOpts): Promise<PausedClaim> {
    this.alive()
    let onPaused!: () => void
    const paused = new Promise<void>((r) => {
      onPaused = r
    })
    let resume!: () => void
    const gate = new Promise<void>((r) => {
      resume = r
    })
    const result = this.world.acquireAs(this.identity(), opts, 'try', { onPaused, until: gate }).then(
      (l) => this.reply(l),
      (err: { code?: string; name?: string; message?: string }) => ({ ev: 'error', code: err.code ?? null, name: err.name, message: err.message }) as Msg,
    )
    await paused
    return { resume, result }
  }

  async release(i?: number): Promise<boolean> {
    this.alive()
    const lease = this.leases[i ?? this.leases.length - 1]
    if (!lease) throw new Error('no such lease')
    return lease.release()
  }

  async kill(): Promise<void> {
    this.dead = true
    this.world.kill(this.pid)
  }

  async stop(): Promise<void> {
    // A stopped process is alive: its witness still speaks for it. Nothing to simulate.
  }

  async exit(): Promise<void> {
    this.alive()
    // As the library's exit hook does: the synchronous release of every lease still held.
    for (const l of this.leases) l.releaseSync()
    this.dead = true
    this.world.kill(this.pid)
  }
}
