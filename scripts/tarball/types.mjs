// Type-checks a small consumer program against the installed package, as a strict TypeScript user
// would compile it: NodeNext resolution, once as ESM (.mts, the "import" condition) and once as
// CommonJS (.cts, the "require" condition), with skipLibCheck off so errors inside the published
// declarations count too. Any diagnostic fails the check.
//
// A declaration that resolves to nothing makes every proclease type `any`, and `any` type-checks
// everything; so the program also holds lines that must NOT compile while the types are real. If a
// type silently becomes `any`, their @ts-expect-error is unused, and TypeScript reports that.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const body = `
export async function useProclease(lockRoot: string): Promise<number> {
  const info: PidInfo = capturePidInfo(process.pid)
  const start: string = info.starttime
  const argv0: string | null = info.argv0
  const verdict: VerifyResult = verifyPidInfo(info)
  const why: string | null = verdict.match ? null : verdict.reason
  const boot: string = currentBootId()
  const host: HostIdentity = hostIdentity()

  const options: LeaseOptions = { key: 'consumer', limit: 2, lockRoot, waitMs: 1000 }
  const lease: Lease = await acquireLease(options)
  const fence: number = lease.fence
  const released: boolean = await lease.release()
  const maybe: Lease | null = await tryAcquireLease(options)
  const slot: number = await withLease(options, (held) => held.slot)
  const status: KeyStatus = await inspectLeases({ key: 'consumer', lockRoot })
  const keys: string[] = listLeaseKeys({ lockRoot })
  const root: string = defaultLockRoot()

  try {
    await acquireLease(options)
  } catch (err) {
    if (err instanceof LeaseError) {
      const code: LeaseError['code'] = err.code
      const same: LeaseErrorCode = code
      if (same === 'lease_busy') return -1
    }
    if (err instanceof ProbeError) {
      const code: ProbeErrorCode = err.code
      if (code === 'process_gone') return -2
    }
  }

  // Each line below compiles only if a proclease type has become \`any\`; then the
  // expect-error directive above it is unused, which TypeScript reports as TS2578.
  // @ts-expect-error starttime is a decimal string, never a number
  const startAsNumber: number = info.starttime
  // @ts-expect-error acquireLease returns a Promise<Lease>
  const notAwaited: Lease = acquireLease(options)
  // @ts-expect-error the code of a LeaseError is one of a closed set of strings
  const unknownCode: LeaseError['code'] = 'no_such_code'
  // @ts-expect-error limit is required
  const noLimit: LeaseOptions = { key: 'consumer' }
  // @ts-expect-error a PidInfo has no such field
  const missing: unknown = info.noSuchField

  return [start, argv0, why, boot, host, fence, released, maybe, slot, status, keys, root,
    startAsNumber, notAwaited, unknownCode, noLimit, missing].length
}
`

const names = `acquireLease, capturePidInfo, currentBootId, defaultLockRoot, hostIdentity, inspectLeases, listLeaseKeys,
  LeaseError, ProbeError, tryAcquireLease, verifyPidInfo, withLease,
  type HostIdentity, type KeyStatus, type Lease, type LeaseErrorCode, type LeaseOptions, type PidInfo,
  type ProbeErrorCode, type VerifyResult`

/** Writes the consumer into `project` (which has the package installed) and type-checks it. */
export function checkConsumerTypes(project, root, run) {
  const dir = join(project, 'types-check')
  mkdirSync(dir)
  writeFileSync(join(dir, 'consumer-esm.mts'), `import {\n  ${names}\n} from 'proclease'\n${body}`)
  writeFileSync(join(dir, 'consumer-cjs.cts'), `import {\n  ${names}\n} from 'proclease'\n${body}`)
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['consumer-esm.mts', 'consumer-cjs.cts'],
    }),
  )
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir })
  // Proof of which declarations were checked: the resolution trace must end in the package's files.
  const listed = run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--listFilesOnly'], { cwd: dir })
  const ours = listed.split('\n').filter((f) => f.includes('/node_modules/proclease/'))
  return ours.map((f) => f.slice(f.indexOf('/node_modules/proclease/') + '/node_modules/proclease/'.length))
}
