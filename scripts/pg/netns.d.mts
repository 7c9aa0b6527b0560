// Types for netns.mjs.
export interface Netns {
  name: string
  /** The host end's address: a server listens here for the namespace's processes. */
  hostAddress: string
  /** The namespace end's address (the clients' source address). */
  nsAddress: string
  /** Prefix of a command run inside the namespace: ['ip', 'netns', 'exec', name]. */
  wrap: string[]
  /** Takes the namespace's end down: packets both ways are dropped silently. */
  partition(): void
  heal(): void
  remove(): void
  exists(): boolean
}
export function createNetns(): Netns
