#!/usr/bin/env node
// Cost of one process-identity probe, four ways, over the same pids in one run:
//   addon    capturePidInfo() from the built package (dist/index.js), and the raw binding
//   js       fs.readFileSync of /proc/<pid>/stat + cmdline, parsed in JS
//   ps       spawning `ps -o lstart=,args= -p PID` (what proclease replaces)
//   C floor  bench/c/probe_floor.c, the same syscalls as the addon in a plain C loop
// Each is warmed up, then timed for several rounds; the table shows medians.
// Usage: node bench/probes.mjs [--rounds N] [--iterations N]
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const ROUNDS = opt('--rounds', 7)
const ITER = opt('--iterations', 500) // per pid per round, for addon / js / C
const PS_ITER = opt('--ps-iterations', 10) // per pid per round

function newestMtime(dir) {
  return Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs))
}

function ensureBuilt() {
  const dist = join(root, 'dist', 'index.js')
  if (!existsSync(dist) || statSync(dist).mtimeMs < newestMtime(join(root, 'lib'))) {
    console.error('building dist/ (tsup)…')
    execFileSync('npx', ['tsup'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  }
  return dist
}

function compileFloor() {
  const dir = mkdtempSync(join(tmpdir(), 'proclease-bench-'))
  const exe = join(dir, 'probe_floor')
  execFileSync('cc', ['-O2', '-o', exe, join(root, 'bench', 'c', 'probe_floor.c')], { stdio: 'inherit' })
  return { dir, exe }
}

// Same parse as the addon: fields after the LAST ')', starttime is field 22.
function jsProbe(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1')
  const nul = cmdline.indexOf('\0')
  return { pid, state: rest[0], starttime: rest[19], argv0: nul < 0 ? cmdline : cmdline.slice(0, nul) }
}

function psProbe(pid) {
  const r = spawnSync('ps', ['-o', 'lstart=,args=', '-p', String(pid)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ps failed for ${pid}`)
  return r.stdout
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** ns per call of fn(pid), over `iter` passes across all pids. */
function timeLoop(fn, pids, iter) {
  let sink = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < iter; i++) for (const pid of pids) sink += fn(pid) ? 1 : 0
  const ns = Number(process.hrtime.bigint() - t0)
  if (sink !== iter * pids.length) throw new Error('a probe returned nothing')
  return ns / (iter * pids.length)
}

function floorRun(exe, pids, iter) {
  const out = execFileSync(exe, [String(iter), ...pids.map(String)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const m = /ns_per_call ([\d.]+)/.exec(out)
  if (!m) throw new Error(`unexpected probe_floor output: ${out}`)
  const starts = Object.fromEntries([...out.matchAll(/pid (\d+) starttime (\d+)/g)].map((x) => [Number(x[1]), x[2]]))
  return { ns: Number(m[1]), starts }
}

const fmt = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(2)} µs`)

async function main() {
  if (process.platform !== 'linux') {
    console.error('bench/probes.mjs measures the Linux /proc path; nothing to compare on', process.platform)
    process.exit(0)
  }
  const pkg = await import(pathToFileURL(ensureBuilt()).href)
  const raw = createRequire(join(root, 'package.json'))('node-gyp-build')(root)
  const floor = compileFloor()
  const children = [0, 1, 2].map(() => spawn('sleep', ['1000'], { stdio: 'ignore' }))
  try {
    const pids = [process.pid, ...children.map((c) => c.pid)]
    // Every method must see the same kernel values before any timing counts.
    const { starts } = floorRun(floor.exe, pids, 1)
    for (const pid of pids) {
      const a = pkg.capturePidInfo(pid).starttime
      const j = jsProbe(pid).starttime
      if (a !== j || a !== starts[pid]) throw new Error(`methods disagree on pid ${pid}: addon ${a}, js ${j}, C ${starts[pid]}`)
    }

    const methods = {
      'addon capturePidInfo': () => timeLoop(pkg.capturePidInfo, pids, ITER),
      'addon raw binding': () => timeLoop((pid) => raw.capture(pid).ok, pids, ITER),
      // What classifyHolder asks: the same capture without argv0 (no cmdline read).
      'raw captureIdentity': () => timeLoop((pid) => raw.captureIdentity(pid).ok, pids, ITER),
      'js readFileSync': () => timeLoop(jsProbe, pids, ITER),
      'C floor': () => floorRun(floor.exe, pids, ITER).ns,
      'ps spawn': () => timeLoop(psProbe, pids, PS_ITER),
    }
    const samples = Object.fromEntries(Object.keys(methods).map((k) => [k, []]))
    for (const run of Object.values(methods)) run() // warm-up
    // Interleave methods within each round so drift in machine load hits them alike.
    for (let r = 0; r < ROUNDS; r++) for (const [k, run] of Object.entries(methods)) samples[k].push(run())

    const med = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]))
    console.log(`\nprobe cost per call, ${pids.length} pids (self + ${children.length} sleep children), ${ROUNDS} rounds, median`)
    console.log(`iterations per round: ${ITER} x ${pids.length} pids (ps: ${PS_ITER} x ${pids.length})\n`)
    console.log('method                  median       min          max')
    for (const [k, v] of Object.entries(samples)) {
      console.log(`${k.padEnd(22)}  ${fmt(med[k]).padEnd(11)}  ${fmt(Math.min(...v)).padEnd(11)}  ${fmt(Math.max(...v))}`)
    }
    const addon = med['addon capturePidInfo']
    const ratios = [
      ['addon / C floor', addon / med['C floor'], 'target <= 1.5'],
      ['raw binding / C floor', med['addon raw binding'] / med['C floor'], ''],
      ['identity / raw binding', med['raw captureIdentity'] / med['addon raw binding'], 'judge without argv0'],
      ['js / addon', med['js readFileSync'] / addon, 'target >= 2'],
      ['ps / addon', med['ps spawn'] / addon, ''],
    ]
    console.log('')
    for (const [name, x, target] of ratios) console.log(`${name.padEnd(22)}  ${x.toFixed(2)}x  ${target}`)
    console.log(
      '\nnote: the addon and the C floor both make the tgkill(pid, pid, 0) thread-group-leader check;\n' +
        'the JS reader does not (it would need /proc/<pid>/status, about one more read), so it is a lower bound.',
    )
  } finally {
    for (const c of children) c.kill('SIGKILL')
    rmSync(floor.dir, { recursive: true, force: true })
  }
}

await main()
