// Keeps one hold alive: renews it every ttl/3 and keeps the local deadline — the send time of the
// last successful renewal plus the TTL, less a margin. A claimer reclaims an unrenewed hold only
// after watching it for a whole TTL from a moment after that renewal reached the server, so a
// holder whose deadline passes has aborted lease.signal before anyone else can be granted.
import type { LostReason } from '../store.js'

export type RenewAnswer = 'renewed' | 'lost'

export interface HeartbeatOptions {
  ttlMs: number
  /** Send time (performance.now()) of the claim that granted the hold. */
  grantedAt: number
  renew: () => Promise<RenewAnswer>
  onLost: (reason: LostReason) => void
  /** The monotonic clock grantedAt is on. */
  now: () => number
}

/** How much before the TTL the holder gives up: timers run late on a loaded machine. */
export function marginFor(ttlMs: number): number {
  return Math.max(Math.floor(ttlMs / 5), 100)
}

export class Heartbeat {
  private deadlineTimer: NodeJS.Timeout | null = null
  private renewTimer: NodeJS.Timeout | null = null
  private stopped = false
  private paused = false

  constructor(private readonly o: HeartbeatOptions) {
    this.armDeadline(o.grantedAt)
    this.scheduleRenew()
  }

  private deadline = 0

  /** The local deadline has not passed (checked now, whatever the timers did). */
  withinDeadline(): boolean {
    return !this.stopped && this.o.now() < this.deadline
  }

  private armDeadline(sentAt: number): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer)
    const at = sentAt + this.o.ttlMs - marginFor(this.o.ttlMs)
    this.deadline = at
    this.deadlineTimer = setTimeout(() => this.lose('expired'), Math.max(0, at - this.o.now()))
    this.deadlineTimer.unref()
  }

  private scheduleRenew(): void {
    if (this.stopped || this.paused) return
    this.renewTimer = setTimeout(() => void this.beat(), Math.max(1, Math.floor(this.o.ttlMs / 3)))
    this.renewTimer.unref()
  }

  private async beat(): Promise<void> {
    if (this.stopped || this.paused) return
    const sentAt = this.o.now()
    let answer: RenewAnswer | null = null
    try {
      answer = await this.o.renew()
    } catch {
      // Not proof of loss by itself: the deadline decides, and a dead session reports itself.
      answer = null
    }
    if (this.stopped || this.paused) return
    if (answer === 'lost') return this.lose('lost')
    if (answer === 'renewed') this.armDeadline(sentAt)
    this.scheduleRenew()
  }

  /** Stops renewing (a release is on its way) but keeps the deadline running. */
  pause(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer)
    this.renewTimer = null
    this.paused = true
  }

  /** Renews again after a release that did not go through. */
  resume(): void {
    if (this.stopped || !this.paused) return
    this.paused = false
    this.scheduleRenew()
  }

  private lose(reason: LostReason): void {
    if (this.stopped) return
    this.stop()
    this.o.onLost(reason)
  }

  stop(): void {
    this.stopped = true
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer)
    if (this.renewTimer) clearTimeout(this.renewTimer)
    this.deadlineTimer = null
    this.renewTimer = null
  }
}
