// The progress line `run` shows on a terminal while it waits for a slot.
import { escapeControl, formatDuration, usageText } from './common.js'

/** The progress line shown on a TTY while waiting: one line, rewritten in place. */
export class Progress {
  private timer: NodeJS.Timeout | null = null
  private counts: { active: number; used: number; limit: number } | null = null
  private shown = false
  private readonly start = performance.now()

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly key: string,
    /** The waiter's own weight: above 1, the line says how much room it waits for. */
    private readonly weight: number,
    private readonly enabled: boolean,
  ) {}

  busy(active: number, used: number, limit: number): void {
    if (!this.enabled) return
    this.counts = { active, used, limit }
    if (this.timer === null) {
      this.timer = setInterval(() => this.draw(), 1000)
      this.timer.unref()
    }
    this.draw()
  }

  private draw(): void {
    if (!this.counts) return
    const elapsed = formatDuration(performance.now() - this.start)
    const { active, used, limit } = this.counts
    const what = this.weight > 1 ? `room for weight ${this.weight} in` : 'a slot of'
    const count = usageText(active, used, limit, this.weight > 1)
    // Written raw (the \r and erase are ours), so the key is escaped here.
    this.stream.write(`\r\x1b[2Kwaiting for ${what} ${escapeControl(JSON.stringify(this.key))} (${count}, ${elapsed})…`)
    this.shown = true
  }

  done(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    if (this.shown) this.stream.write('\r\x1b[2K')
    this.shown = false
  }
}

