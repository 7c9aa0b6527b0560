// The independent checker of a chaos run. It imports nothing from the engine: it replays the logs
// the workers and the driver wrote and decides, from timestamps alone, whether the engine ever
// admitted past a limit, lost a live holder's lease, reused a slot or a fence, left litter, or
// hung.
//
// Time model. Every timestamp is CLOCK_MONOTONIC in µs, shared by all processes. A worker logs
// "grant" after acquire returned and "rel" before it calls release, so the logged interval
// [grant, rel) of a hold lies inside the real one. A SIGKILLed holder's interval ends at
// max(kill logged by the driver before sending the signal, the worker's last log line): both are
// before its real death. Every check below is therefore sound: it compares intervals that are
// subsets of the real holds, so a violation it reports really happened (it may miss some).
//
// Checks (per key). Holds are weighted (the `weight` an acquire asked for, 1 in older logs): what
// the limit bounds is the sum of live weights, never the number of holders.
//   over_admission   at some instant the weights of the logged-live holders S sum to more than
//                    the limit of every holder of S that may have been granted last (the engine
//                    grants H only while the others' weights plus H's fit H's limit, so
//                    weight(S) <= limit(last granted of S)). Holders above a lowered limit that
//                    were granted before the change are therefore allowed until they release.
//   grant_over_limit a grant whose weight, with the weights of the holders that held throughout
//                    the grantee's whole acquire call, exceeds its limit.
//   epoch_over_limit the weights of holders whose acquire began after the latest limit change
//                    sum to more than it.
//   weight_mismatch  lease.weight is not the weight the engine was asked for.
//   fairness_overtake a fair acquire granted while a fair waiter that certainly queued before it
//                    arrived was certainly still waiting (S11; precise rules at fairnessOf below).
//   slot_shared      two overlapping holds of the same slot index.
//   fence_order      a grant that certainly came later carries a fence that is not larger; or a
//                    fence used twice.
//   lease_lost       release returned false though nobody deleted the lock root meanwhile
//                    (a live holder's slot was taken from it).
//   error            any error other than lease_busy, from acquire, release or inspect.
//   unexpected_exit  a worker that died without being killed, or never logged its exit.
//   deadlock         a worker that did not finish its loop within the stop timeout.
//   deadline_overrun a waiter that was never paused answered lease_busy more than 5 s after its
//                    waitMs (over 1 s is counted, not failed: a loaded machine starves processes).
//   litter           files left after every process exited and a final sweep ran; or a slot
//                    record left by a process that was never killed.
//   limit_mismatch   (harness self-check) a worker used a limit that was not in force.
//
// Not violations, but what a verdict rests on: `work` (whether the run reached the driver's
// minWork floor) and `rallies` (forced interleavings of negative controls: how many were opened
// and in how many a member saw limit+1 holders at once - with a sound checker, each of those is
// an over-admission it must report).
//
// A networked store (meta.store 'postgres') has holds that end without their holder: a holder
// stopped (or starved) past its TTL, or whose session died with a server restart, has lost its
// hold, and the store may grant the slot to another once its local deadline has passed - while
// the stopped holder cannot log anything. What the checker may assume is what the store promises:
// nobody else is granted a slot while its holder's lease.held() would still say true. So the
// worker logs `held` (held() was true just after t) every few ms while holding, and `rel` with
// held() checked at release time, and a hold ends:
//   - at `rel` when release returned true (the hold's row was still its own throughout, so it
//     counted for every claim meanwhile);
//   - otherwise (release said false, the worker was killed or died holding) at its last logged
//     evidence of holding: the latest `held` or held `rel`, or the grant. That is before its local
//     deadline and before its death, so the interval is inside the real hold: sound. A store that
//     grants a slot while its holder still finds it held (a claim that takes a live hold, one
//     holder too many) is caught as long as the victim logs on (every ~15 ms while it holds).
// Also for a networked store: `held` logged after `lost` is a violation (held_after_lost: the
// signal fired but held() still said true); a release that said false is counted, not a violation
// (the victim-side view of a hold taken wrongly is the over-admission above); store_unavailable
// errors are expected while the server restarts and for a short grace after (2 TTLs + 1 s), or
// for a worker that was paused since a restart began; litter excuses rows of workers that lost a
// hold or saw the server go away (a session that died before it could delete its row).
//
// Lock-root deletion is the one out-of-model event: an external actor deletes live records, so
// their holders silently lose their leases. A hold whose release returns false, or whose holder
// was killed, while a deletion overlapped its life [acquire, release's answer] is taken to end at
// the start of that deletion. A hold whose release returned true kept its record throughout and is
// checked in full.
import * as fs from 'node:fs'
import { join } from 'node:path'

function readJsonl(path, counters) {
  const out = []
  let text
  try {
    text = fs.readFileSync(path, 'utf8')
  } catch (err) {
    if (err.code === 'ENOENT') return out
    throw err
  }
  for (const line of text.split('\n')) {
    if (line.length === 0) continue
    try {
      out.push(JSON.parse(line))
    } catch {
      counters.badLines++
    }
  }
  return out
}

/** Loads a run directory written by driver.mjs. */
export function loadRun(runDir) {
  const counters = { badLines: 0 }
  const meta = JSON.parse(fs.readFileSync(join(runDir, 'meta.json'), 'utf8'))
  const driver = readJsonl(join(runDir, 'driver.jsonl'), counters)
  const workers = new Map()
  for (const name of fs.readdirSync(runDir)) {
    const m = /^w-(\d+)\.jsonl$/.exec(name)
    if (m) workers.set(Number(m[1]), readJsonl(join(runDir, name), counters))
  }
  let leftovers = null
  try {
    leftovers = JSON.parse(fs.readFileSync(join(runDir, 'leftovers.json'), 'utf8'))
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  return { meta, driver, workers, leftovers, badLines: counters.badLines }
}

const pct = (sorted, p) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))])
const round = (x, d = 1) => (x === null || x === undefined ? x : Math.round(x * 10 ** d) / 10 ** d)

/**
 * Checks a loaded run. Returns { ok, violations, summary }. `violations` is capped per kind in
 * the list (counts are exact in summary.violationCounts).
 */
export function checkRun(run, { maxPerKind = 5 } = {}) {
  const { meta, driver, workers, leftovers } = run
  const violations = []
  const violationCounts = {}
  const violate = (kind, detail) => {
    violationCounts[kind] = (violationCounts[kind] ?? 0) + 1
    if (violationCounts[kind] <= maxPerKind) violations.push({ kind, ...detail })
  }

  // ---- the driver's timeline -------------------------------------------------------------
  const kills = new Map() // worker -> kill event
  const spawns = new Map() // worker -> pid
  const deletions = [] // [d0, d1]
  const limitChanges = new Map() // key -> [{t, value}]
  const exits = new Map()
  const hung = []
  let stopAllT = null
  let endT = null
  let work = null
  const rallies = { opened: 0, scanMet: new Set(), met: new Set() }
  const counts = { spawns: 0, kills: 0, killsMidClaim: 0, killsHolding: 0, killsRandom: 0, stops: 0, conts: 0, limitChanges: 0, rootDeletions: 0, trapsFired: 0 }
  for (const key of meta.keys) limitChanges.set(key, [{ t0: -Infinity, t: -Infinity, value: meta.limit }])
  const networked = meta.store === 'postgres'
  const restarts = [] // [t0, t1] of each server restart
  counts.restarts = 0
  for (const e of driver) {
    switch (e.ev) {
      case 'spawn':
        spawns.set(e.w, e.pid)
        counts.spawns++
        break
      case 'kill':
        kills.set(e.w, e)
        if (e.why === 'hung') break
        counts.kills++
        if (e.why === 'mid-claim') counts.killsMidClaim++
        else if (e.why === 'holder') counts.killsHolding++
        else counts.killsRandom++
        break
      case 'stop':
        counts.stops++
        break
      case 'cont':
        counts.conts++
        break
      case 'limit':
        limitChanges.get(e.key).push({ t0: e.t0 ?? e.t, t: e.t, value: e.value })
        counts.limitChanges++
        break
      case 'rmroot':
        deletions.push([e.t0, e.t1])
        counts.rootDeletions++
        break
      case 'trap':
        counts.trapsFired++
        break
      case 'exit':
        exits.set(e.w, e)
        break
      case 'hung':
        hung.push(e)
        break
      case 'stopAll':
        stopAllT = e.t
        break
      case 'work':
        work = { minWork: e.minWork ?? null, done: e.done, grants: e.grants, kills: e.kills, limitChanges: e.limitChanges }
        break
      case 'rally':
        rallies.opened++
        break
      case 'restart':
        counts.restarts++
        restarts.push([e.t0, e.t1])
        if (e.error) violate('harness', { detail: `server restart failed: ${e.error}` })
        break
      case 'end':
        endT = e.t
        break
    }
  }
  const deletionIn = (a, b) => deletions.find(([d0, d1]) => d0 < b && d1 > a)
  // When each worker was paused (SIGSTOP .. SIGCONT; a kill or the end closes an open pause).
  const pauses = new Map()
  for (const e of driver) {
    if (e.ev === 'stop') {
      if (!pauses.has(e.w)) pauses.set(e.w, [])
      pauses.get(e.w).push([e.t, Infinity])
    } else if (e.ev === 'cont') {
      const open = (pauses.get(e.w) ?? []).find((p) => p[1] === Infinity)
      if (open) open[1] = e.t
    }
  }
  const pausedDuring = (w, a, b) => (pauses.get(w) ?? []).some(([p0, p1]) => p0 < b && p1 > a)
  // A networked store is unavailable while its server restarts, and briefly after.
  const graceUs = ((meta.ttlMs ?? 0) * 2 + 1000) * 1000
  const outageExcuses = (w, start, t) =>
    restarts.some(([r0, r1]) => r0 <= t && (start <= r1 + graceUs || t <= r1 + graceUs || pausedDuring(w, r0, t)))
  const lostPids = new Set()

  // ---- holds, from each worker's log -------------------------------------------------------
  const holds = []
  const ops = { acquires: 0, grants: 0, grantsAfterWaiting: 0, heavyGrants: 0, queuedWithoutPlace: 0, busyWait: 0, busyTry: 0, errors: 0, releasesOk: 0, releasesFalse: 0, wiped: 0, unavailable: 0, lostSignals: {} }
  const grantWaits = []
  const busyWaits = []
  for (const [w, events] of workers) {
    let pending = null
    let current = null
    let exited = false
    let lastT = -Infinity
    for (const e of events) {
      const t = e.t ?? e.t0
      if (typeof t === 'number') lastT = Math.max(lastT, t)
      switch (e.ev) {
        case 'acq':
          ops.acquires++
          pending = { w, key: e.key, limit: e.limit, mode: e.mode, waitMs: e.waitMs, t0: e.t0, weight: e.weight ?? 1, fair: e.fair === true, q: null }
          break
        case 'queued':
          if (pending && pending.q === null) {
            pending.q = [e.c0, e.t]
            // A fair waiting claim's first busy answer gives it a queue place (S11); counted, not judged.
            if (pending.fair && e.place === false) ops.queuedWithoutPlace++
          }
          break
        case 'grant': {
          ops.grants++
          if (e.waited) ops.grantsAfterWaiting++
          if ((e.weight ?? 1) > 1) ops.heavyGrants++
          grantWaits.push(e.waitedMs)
          const weight = e.weight ?? pending?.weight ?? 1
          // The granting claim attempt; older logs did not time it: the whole acquire call.
          const c0 = e.c0 ?? pending?.t0 ?? e.t
          const c1 = e.c1 ?? e.t
          current = { ...pending, weight, c0, c1, s: e.t, slot: e.slot, fence: e.fence, waitedMs: e.waitedMs, t2: null, t3: null, ok: null, lastHeld: e.t, lostT: null }
          if (e.leaseWeight !== undefined && e.leaseWeight !== (e.engineWeight ?? weight)) {
            violate('weight_mismatch', { w, key: e.key, fence: e.fence, asked: e.engineWeight ?? weight, leaseWeight: e.leaseWeight })
          }
          if (!pending || pending.key !== e.key) violate('log_order', { w, detail: 'grant without acquire' })
          holds.push(current)
          pending = null
          break
        }
        case 'busy':
          if (e.mode === 'try') ops.busyTry++
          else {
            ops.busyWait++
            busyWaits.push({ w, waitedMs: e.waitedMs, waitMs: pending?.waitMs, paused: pending ? pausedDuring(w, pending.t0, e.t) : false })
          }
          pending = null
          break
        case 'rel':
          if (current) {
            current.t2 = e.t
            if (e.held === true) current.lastHeld = Math.max(current.lastHeld, e.t)
            if (e.held === true && current.lostT !== null) violate('held_after_lost', { w, key: current.key, fence: current.fence, lostAt: current.lostT, heldAt: e.t })
          }
          break
        case 'held':
          if (current) {
            current.lastHeld = Math.max(current.lastHeld, e.t)
            if (current.lostT !== null && e.t > current.lostT) violate('held_after_lost', { w, key: current.key, fence: current.fence, lostAt: current.lostT, heldAt: e.t })
          }
          break
        case 'lost':
          ops.lostSignals[e.reason] = (ops.lostSignals[e.reason] ?? 0) + 1
          lostPids.add(spawns.get(w))
          if (current && current.lostT === null) current.lostT = e.t
          break
        case 'reld':
          if (current) {
            current.ok = e.ok
            current.t3 = e.t
            if (e.ok) ops.releasesOk++
            else ops.releasesFalse++
          }
          current = null
          break
        case 'err':
          if (networked && e.code === 'store_unavailable' && outageExcuses(w, pending?.t0 ?? e.t, e.t)) {
            ops.unavailable++
            lostPids.add(spawns.get(w))
            if (e.phase === 'release') current = null
            pending = null
            break
          }
          ops.errors++
          violate('error', { w, phase: e.phase, key: e.key, code: e.code, name: e.name, message: e.message, stack: e.stack })
          if (e.phase === 'release') current = null
          pending = null
          break
        case 'exit':
          exited = true
          break
        case 'rally':
          if (e.met) (e.phase === 'hold' ? rallies.met : rallies.scanMet).add(e.seq)
          break
      }
    }
    const kill = kills.get(w)
    for (const h of holds.filter((x) => x.w === w)) {
      if (networked) {
        // See the header: a confirmed release counts up to `rel`, anything else up to the last
        // evidence that the hold was still held.
        if (h.ok === true) {
          h.e = h.t2
          h.end = 'released'
        } else {
          h.e = h.lastHeld
          h.end = h.ok === false ? 'lost' : kill ? 'killed' : h.t2 !== null ? 'released_unconfirmed' : 'vanished'
          if (h.ok === false) ops.lostHolds = (ops.lostHolds ?? 0) + 1
        }
        continue
      }
      if (h.t2 !== null) {
        if (h.ok === false) {
          // The record may have been wiped at any moment until release looked for it (release
          // can wait a while for the gate), so the whole life up to the release's answer counts.
          const d = deletionIn(h.t0, h.t3)
          if (d) {
            h.e = Math.max(h.s, Math.min(h.t2, d[0]))
            h.end = 'wiped'
            ops.wiped++
          } else {
            h.e = h.t2
            h.end = 'lost'
            violate('lease_lost', { w, key: h.key, slot: h.slot, fence: h.fence, grantedAt: h.s, releasingAt: h.t2 })
          }
        } else if (h.ok === true) {
          h.e = h.t2
          h.end = 'released'
        } else {
          // Killed before the release answered: whether the record was still there is unknown. A
          // lock-root deletion during the hold may have wiped it first, admitting others beside
          // it (documented), so the hold counts only up to that deletion, as for a wiped release.
          const d = deletionIn(h.t0, h.t2)
          h.e = d ? Math.max(h.s, Math.min(h.t2, d[0])) : h.t2
          h.end = d ? 'wiped_unconfirmed' : 'released_unconfirmed'
        }
      } else if (kill) {
        h.e = Math.max(kill.t, lastT)
        h.end = 'killed'
        const d = deletionIn(h.t0, h.e)
        if (d) h.e = Math.max(h.s, Math.min(h.e, d[0]))
      } else {
        // Died holding without being killed: the crash is reported below; end at its last word.
        h.e = lastT
        h.end = 'vanished'
      }
    }
    const ex = exits.get(w)
    if (!kill && !exited) {
      violate('unexpected_exit', { w, pid: spawns.get(w), code: ex?.code, signal: ex?.signal, detail: 'worker never finished its loop' })
    } else if (!kill && ex && ex.code !== 0) {
      violate('unexpected_exit', { w, pid: spawns.get(w), code: ex.code, signal: ex.signal })
    }
  }
  for (const h of hung) violate('deadlock', { w: h.w, pid: h.pid, detail: `did not exit within ${meta.stopTimeoutMs} ms of the stop signal` })

  // ---- per key checks ---------------------------------------------------------------------
  const perKey = {}
  const fairness = []
  for (const key of meta.keys) {
    const hs = holds.filter((h) => h.key === key)
    const changes = limitChanges.get(key)
    // Each change is logged at t0 before the control file is replaced and at t after. A worker
    // reads the file after its own t0 and before its grant.
    const limitAt = (t) => {
      let v = changes[0].value
      for (const c of changes) if (c.t <= t) v = c.value
      return v
    }

    // Limit consistency (harness self-check): the value in force when the acquire began, or a
    // later one whose write may have preceded the read.
    for (const h of hs) {
      const allowed = new Set([limitAt(h.t0)])
      for (const c of changes) if (c.t > h.t0 && c.t0 < h.s) allowed.add(c.value)
      if (!allowed.has(h.limit)) violate('limit_mismatch', { key, w: h.w, used: h.limit, allowed: [...allowed] })
    }

    // Sweep over interval boundaries: at each change the live set is checked.
    const points = []
    for (const h of hs) {
      if (h.e > h.s) {
        points.push({ t: h.s, kind: 1, h })
        points.push({ t: h.e, kind: 0, h })
      }
    }
    // Ends before starts at the same instant: intervals are half-open [s, e).
    points.sort((a, b) => a.t - b.t || a.kind - b.kind)
    const live = new Set()
    let used = 0
    let peak = 0
    let peakAt = null
    let peakUsed = 0
    let heavyShared = 0
    let overEpisodes = 0
    let inEpisode = false
    for (const p of points) {
      if (p.kind === 0) {
        live.delete(p.h)
        used -= p.h.weight
      } else {
        live.add(p.h)
        used += p.h.weight
      }
      if (live.size > peak) {
        peak = live.size
        peakAt = p.t
      }
      peakUsed = Math.max(peakUsed, used)
      // Grants while a heavy hold shares the key: where a count and a weight sum differ.
      if (p.kind === 1 && live.size >= 2 && used > live.size) heavyShared++
      if (live.size === 0) {
        inEpisode = false
        continue
      }
      // Holders that may have been granted last: nobody in S certainly came after them.
      let bound = 0
      for (const y of live) {
        let dominated = false
        for (const x of live) {
          if (x !== y && x.t0 > y.s) {
            dominated = true
            break
          }
        }
        if (!dominated) bound = Math.max(bound, y.limit)
      }
      if (used > bound) {
        if (!inEpisode) {
          overEpisodes++
          violate('over_admission', {
            key,
            at: p.t,
            holders: live.size,
            used,
            limitBound: bound,
            limitInForce: limitAt(p.t),
            live: [...live].map((h) => ({ w: h.w, slot: h.slot, fence: h.fence, weight: h.weight, limit: h.limit, t0: h.t0, granted: h.s, end: h.e, how: h.end })),
          })
        }
        inEpisode = true
      } else {
        inEpisode = false
      }
      if (p.kind === 1) {
        for (const x of live) {
          if (x !== p.h && x.slot === p.h.slot) {
            violate('slot_shared', { key, slot: x.slot, a: { w: x.w, fence: x.fence, granted: x.s }, b: { w: p.h.w, fence: p.h.fence, granted: p.h.s } })
          }
        }
      }
    }

    // Grants against holders that held through the grantee's whole acquire call.
    for (const h of hs) {
      let others = 0
      let othersUsed = 0
      for (const x of hs) {
        if (x !== h && x.s <= h.t0 && x.e > h.s) {
          others++
          othersUsed += x.weight
        }
      }
      if (othersUsed + h.weight > h.limit) violate('grant_over_limit', { key, w: h.w, granted: h.s, limit: h.limit, weight: h.weight, othersHolding: others, othersUsed })
    }

    // Epochs between limit changes: holders that certainly read the epoch's value (acquire
    // began after it was written, grant before the next one was) obey it among themselves.
    const epochs = []
    for (let i = 0; i < changes.length; i++) {
      const from = changes[i].t
      const to = i + 1 < changes.length ? changes[i + 1].t0 : Infinity
      const fresh = hs.filter((h) => h.t0 >= from && h.s < to)
      const pts = []
      for (const h of fresh) {
        const s = h.s
        const e = Math.min(h.e, to)
        if (e > s) pts.push([s, 1, h.weight], [e, 0, h.weight])
      }
      pts.sort((a, b) => a[0] - b[0] || a[1] - b[1])
      let n = 0
      let freshPeak = 0
      for (const [, k, weight] of pts) {
        n += k === 1 ? weight : -weight
        freshPeak = Math.max(freshPeak, n)
      }
      if (freshPeak > changes[i].value) violate('epoch_over_limit', { key, limit: changes[i].value, from, freshPeak })
      epochs.push({ limit: changes[i].value, from, to, freshPeak })
    }

    // Fences: unique, and larger for every grant that certainly came later.
    const seen = new Map()
    for (const h of hs) {
      if (seen.has(h.fence)) violate('fence_order', { key, detail: 'fence used twice', fence: h.fence, a: seen.get(h.fence).w, b: h.w })
      seen.set(h.fence, h)
    }
    const byS = [...hs].sort((a, b) => a.s - b.s)
    const byT0 = [...hs].sort((a, b) => a.t0 - b.t0)
    let i = 0
    let maxFence = -Infinity
    let maxHold = null
    for (const y of byT0) {
      while (i < byS.length && byS[i].s < y.t0) {
        if (byS[i].fence > maxFence) {
          maxFence = byS[i].fence
          maxHold = byS[i]
        }
        i++
      }
      if (maxFence >= y.fence) violate('fence_order', { key, earlier: { w: maxHold.w, fence: maxFence, granted: maxHold.s }, later: { w: y.w, fence: y.fence, acquireStart: y.t0 } })
    }

    // Reclaims: a grant of a slot whose previous holder was killed holding it.
    const bySlot = new Map()
    let reclaims = 0
    const reclaimLatency = []
    for (const h of byS) {
      const prev = bySlot.get(h.slot)
      if (prev && prev.end === 'killed') {
        reclaims++
        reclaimLatency.push((h.s - prev.e) / 1000)
      }
      bySlot.set(h.slot, h)
    }
    reclaimLatency.sort((a, b) => a - b)

    const values = changes.map((c) => c.value)
    const peakPerLimit = {}
    for (const ep of epochs) peakPerLimit[ep.limit] = Math.max(peakPerLimit[ep.limit] ?? 0, ep.freshPeak)
    const fair = fairnessOf(key, hs, deletionIn, violate)
    fairness.push(fair)
    perKey[key] = {
      grants: hs.length,
      peakHolders: peak,
      peakUsed,
      heavyShared,
      peakAtMs: peakAt === null ? null : round((peakAt - (meta.startT ?? 0)) / 1000),
      limitMin: Math.min(...values),
      limitMax: Math.max(...values),
      limitChanges: changes.length - 1,
      peakFreshHoldersPerLimit: peakPerLimit,
      overAdmissionEpisodes: overEpisodes,
      reclaimsAfterKill: reclaims,
      reclaimLatencyMs: { p50: round(pct(reclaimLatency, 0.5)), max: round(reclaimLatency.at(-1) ?? null) },
      killedHolding: hs.filter((h) => h.end === 'killed').length,
      wipedByRootDeletion: hs.filter((h) => h.end === 'wiped').length,
    }
  }

  // ---- leftovers ---------------------------------------------------------------------------
  const killedPids = new Set([...kills.values()].map((k) => k.pid))
  const left = { beforeSweep: null, afterSweep: null }
  if (leftovers) {
    const classify = (snap) => {
      const out = { slotRecords: 0, places: 0, notices: 0, tmpFiles: 0, other: 0, entries: [] }
      for (const ent of snap) {
        if (ent.kind === 'slot') out.slotRecords++
        else if (ent.kind === 'place') out.places++
        else if (ent.kind === 'notice') out.notices++
        else if (ent.kind === 'tmp') out.tmpFiles++
        else out.other++
        out.entries.push(ent)
      }
      return out
    }
    left.beforeSweep = classify(leftovers.before)
    left.afterSweep = classify(leftovers.after)
    for (const ent of leftovers.before) {
      if ((ent.kind === 'slot' || ent.kind === 'place') && !killedPids.has(ent.pid) && !(networked && lostPids.has(ent.pid))) {
        violate('litter', { when: 'before final sweep', path: ent.path, pid: ent.pid, detail: `${ent.kind === 'slot' ? 'slot record' : 'queue place'} of a process that was not killed` })
      }
      if (ent.kind === 'other') violate('litter', { when: 'before final sweep', path: ent.path, detail: 'unexpected entry' })
    }
    // A takeover notice stays until the key's next grant (there is none after the run): one at most
    // for each holder killed while holding. Anything else after the sweep is litter.
    const killedHolding = holds.filter((h) => h.end === 'killed').length
    const noticesLeft = leftovers.after.filter((ent) => ent.kind === 'notice')
    if (noticesLeft.length > killedHolding) violate('litter', { when: 'after final sweep', detail: `${noticesLeft.length} takeover notices for ${killedHolding} holders killed` })
    for (const ent of leftovers.after) if (ent.kind !== 'notice') violate('litter', { when: 'after final sweep', path: ent.path, kind: ent.kind })
  } else {
    violate('litter', { detail: 'no leftovers snapshot (the run did not finish)' })
  }

  // ---- stop ---------------------------------------------------------------------------------
  let maxExitAfterStopMs = null
  let survivors = 0
  if (stopAllT !== null) {
    for (const ex of exits.values()) {
      if (ex.t >= stopAllT && !kills.has(ex.w)) {
        survivors++
        maxExitAfterStopMs = Math.max(maxExitAfterStopMs ?? 0, (ex.t - stopAllT) / 1000)
      }
    }
  } else {
    violate('deadlock', { detail: 'the driver never reached the stop phase' })
  }

  grantWaits.sort((a, b) => a - b)
  // I4: a waiter fails by its deadline plus a small bound. A paused waiter cannot; others get a
  // generous bound (a loaded 2-core machine starves processes), and far past it is a hang.
  const overrun = (b, ms) => b.waitMs !== undefined && !b.paused && b.waitedMs > b.waitMs + ms
  const late = busyWaits.filter((b) => overrun(b, 1000))
  for (const b of busyWaits.filter((x) => overrun(x, 5000))) violate('deadline_overrun', { w: b.w, waitMs: b.waitMs, waitedMs: b.waitedMs })
  const summary = {
    seed: meta.seed,
    procs: meta.procs,
    seconds: meta.seconds,
    keys: meta.keys.length,
    limit: meta.limit,
    fault: meta.fault ?? null,
    store: meta.store ?? 'file',
    ttlMs: meta.ttlMs ?? null,
    durationS: endT !== null && meta.startT !== undefined ? round((endT - meta.startT) / 1e6) : null,
    workersStarted: counts.spawns,
    chaos: counts,
    ops: { ...ops, grantWaitMs: { p50: round(pct(grantWaits, 0.5)), p99: round(pct(grantWaits, 0.99)), max: round(grantWaits.at(-1) ?? null) } },
    deadlineMisses: ops.busyWait,
    busyReturnedLateOver1s: late.length,
    perKey,
    leftovers: left,
    stop: { survivors, maxExitAfterStopMs: round(maxExitAfterStopMs), hung: hung.length, stopTimeoutMs: meta.stopTimeoutMs },
    unparsableLogLines: run.badLines,
    work,
    rallies: { opened: rallies.opened, scanMet: rallies.scanMet.size, met: rallies.met.size },
    fairness: mergeFairness(fairness),
    violationCounts,
  }
  return { ok: violations.length === 0, violations, summary }
}

/**
 * Fairness among fair holds of one key (S11): a fair waiting acquire takes its queue place on its
 * first busy answer, and no later arrival may be granted while that place is live. Judged from
 * the claim attempts the worker timed (see worker.mjs), only where the order is certain:
 *
 *   A  a fair, waiting acquire that was granted after queueing: its place was taken inside the
 *      attempt [q0, q1] that gave its first busy answer, and it was still waiting (alive, not
 *      gone: it was granted in the end, so it neither timed out nor aborted nor was killed) until
 *      the attempt [c0, c1] that granted it began, at c0.
 *   B  any other fair acquire that was granted (waiting or try). It arrived no earlier than
 *      arrival(B): the start of its own first busy attempt if it queued (its place is later than
 *      that), else the start of its granting attempt (a claim without a place is granted only
 *      when no live place exists at all).
 *   overtake   q1(A) < arrival(B) and c1(B) < c0(A): A's place certainly existed before B
 *      arrived, and B's grant certainly happened while A was still waiting for its own.
 *
 * Left out: waiters killed, aborted or timed out (no grant; their places end with them, which
 * lets those behind move up but never reorders the living), holds of `fair: false` acquires
 * (they barge by contract) on either side, and every A whose wait [q0(A), c1(A)] overlapped a
 * lock-root deletion (the queue goes with the directory; A queues anew, behind later arrivals).
 * Kills of other processes, pauses (a stopped waiter is alive and keeps its place) and limit
 * changes (strict FIFO: the head is served first whatever fits) excuse nothing.
 */
function fairnessOf(key, hs, deletionIn, violate) {
  const fair = hs.filter((h) => h.fair)
  const waiters = fair.filter((h) => h.mode === 'wait' && h.q !== null)
  const arrival = (h) => (h.q !== null ? h.q[0] : h.c0)
  const out = { fairWaiters: 0, pairs: 0, overtakes: 0, tryOvertakes: 0, overtakenWaiters: 0, maxOvertakes: 0, excludedWiped: 0, waits: [] }
  // B candidates by arrival, so each A scans only those that arrived after its place.
  const byArrival = [...fair].sort((a, b) => arrival(a) - arrival(b))
  for (const a of waiters) {
    out.waits.push((a.s - a.t0) / 1000)
    if (deletionIn(a.q[0], a.c1)) {
      out.excludedWiped++
      continue
    }
    out.fairWaiters++
    let n = 0
    let lo = 0
    let hi = byArrival.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (arrival(byArrival[mid]) > a.q[1]) hi = mid
      else lo = mid + 1
    }
    for (let i = lo; i < byArrival.length; i++) {
      const b = byArrival[i]
      if (arrival(b) >= a.c0) break
      out.pairs++
      if (b.c1 < a.c0) {
        n++
        if (b.q === null) out.tryOvertakes++
        violate('fairness_overtake', {
          key,
          waiter: { w: a.w, fence: a.fence, weight: a.weight, queuedBy: a.q[1], grantClaimFrom: a.c0 },
          overtaker: { w: b.w, fence: b.fence, weight: b.weight, mode: b.mode, arrivedFrom: arrival(b), grantedBy: b.c1, queued: b.q !== null },
        })
      }
    }
    if (n > 0) out.overtakenWaiters++
    out.overtakes += n
    out.maxOvertakes = Math.max(out.maxOvertakes, n)
  }
  return out
}

function mergeFairness(list) {
  const out = { fairWaiters: 0, pairs: 0, overtakes: 0, tryOvertakes: 0, overtakenWaiters: 0, maxOvertakes: 0, excludedWiped: 0 }
  const waits = []
  for (const f of list) {
    for (const k of Object.keys(out)) out[k] = k === 'maxOvertakes' ? Math.max(out[k], f[k]) : out[k] + f[k]
    waits.push(...f.waits)
  }
  waits.sort((a, b) => a - b)
  return { ...out, waitMs: { p50: round(pct(waits, 0.5)), p99: round(pct(waits, 0.99)), max: round(waits.at(-1) ?? null) } }
}
