// The hold's environment as a command under `run` sees it: a shell snippet that prints it, and its parser.

/** A shell command printing the hold's environment, one NAME=value line each ("unset" when unset). */
export const PRINT_ENV = ['KEY', 'SLOT', 'FENCE', 'WEIGHT', 'RECOVERED']
  .map((n) => `if [ -n "\${PROCLEASE_${n}+x}" ]; then printf '%s=%s\\n' ${n} "$PROCLEASE_${n}"; else echo ${n} unset; fi`)
  .join('; ')

export function envOf(stdout: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const line of stdout.split('\n')) {
    const set = /^([A-Z]+)=(.*)$/.exec(line)
    if (set) out[set[1] as string] = set[2]
    const unset = /^([A-Z]+) unset$/.exec(line)
    if (unset) out[unset[1] as string] = undefined
  }
  return out
}
