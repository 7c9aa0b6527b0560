// A session that fails while it is being opened (the server restarting under a connect): the
// store must answer store_unavailable, never throw from inside its own callback. Seen once in the
// chaos stress on PostgreSQL as "ReferenceError: Cannot access 's' before initialization".
// node-postgres is replaced by a client whose connection errors during connect().
import { expect, it, vi } from 'vitest'

vi.mock('pg', async () => {
  // Inside the factory: vi.mock is hoisted above the imports.
  const { EventEmitter } = await import('node:events')
  class Client extends EventEmitter {
    readonly processID = 4242
    readonly connection = { stream: { ref: (): void => undefined, unref: (): void => undefined } }
    async connect(): Promise<void> {
      // The socket reports an error, yet the startup handshake had completed.
      this.emit('error', Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' }))
    }
    async query(): Promise<never> {
      throw Object.assign(new Error('Connection terminated'), { code: 'ECONNRESET' })
    }
    async end(): Promise<void> {}
  }
  return { default: { Client }, Client }
})

it('a holder session that dies while opening makes the claim store_unavailable', async () => {
  const { postgresStore } = await import('../../../lib/lease/postgres/index.js')
  const { tryAcquireLease } = await import('../../../lib/index.js')
  const store = postgresStore({ connectionString: 'postgresql://app@db.invalid/ops' })
  try {
    await expect(tryAcquireLease({ key: 'k', limit: 1, store })).rejects.toMatchObject({ code: 'store_unavailable' })
  } finally {
    await store.close()
  }
})
