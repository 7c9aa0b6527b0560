// One worker of `npm run demo`: loops acquire → hold → release on a shared key through the built
// package, and reports each step as a JSON line on stdout. Timestamps are process.hrtime (the
// system-wide monotonic clock), so the parent can compare them across processes. It stops when
// its stdin closes: it finishes the current hold, or abandons a wait.
import { acquireLease } from 'proclease'

const [id, lockRoot, key, limitText] = process.argv.slice(2)
const limit = Number(limitText)
const stop = new AbortController()
process.stdin.on('end', () => stop.abort())
process.stdin.on('error', () => stop.abort())
process.stdin.resume()

const now = () => process.hrtime.bigint().toString()
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`)
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

while (!stop.signal.aborted) {
  let lease
  try {
    lease = await acquireLease({ key, limit, lockRoot, signal: stop.signal, metadata: { worker: Number(id) } })
  } catch (err) {
    if (err.code === 'aborted') break
    throw err
  }
  // Stamped after the grant and before the release: each reported interval lies inside the
  // real hold, so an overlap the parent finds is a real one.
  emit({ ev: 'acquired', slot: lease.slot, fence: lease.fence, t: now() })
  await pause(400 + Math.random() * 800)
  emit({ ev: 'released', slot: lease.slot, t: now() })
  await lease.release()
  await pause(50 + Math.random() * 250)
}
process.stdin.destroy()
