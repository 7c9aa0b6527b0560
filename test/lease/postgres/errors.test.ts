// How socket and server errors map to outcomes: an errno code is never taken for a SQLSTATE.
import { describe, expect, it } from 'vitest'
import { claimOutcome, isOutage, leaseErrorOf, sqlState } from '../../../lib/lease/postgres/errors.js'

function errno(code: string, syscall = 'write'): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno: -32, syscall })
}

describe('PostgreSQL error mapping', () => {
  // Five capital letters, like a SQLSTATE: a write to a socket the server closed (a restart) failed
  // with EPIPE, and inspect() threw it raw instead of store_unavailable (seen in the chaos stress).
  it.each(['EPIPE', 'EBADF', 'ENXIO', 'ECONNRESET', 'ECONNREFUSED'])('%s from a socket is an outage, not a SQLSTATE', (code) => {
    const err = errno(code)
    expect(sqlState(err)).toBeNull()
    expect(isOutage(err)).toBe(true)
    expect(claimOutcome(err)).toMatchObject({ kind: 'unavailable' })
    expect(leaseErrorOf(err)).toMatchObject({ code: 'store_unavailable' })
  })

  it('a server error keeps its SQLSTATE, letters included', () => {
    const err = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01', severity: 'FATAL' })
    expect(sqlState(err)).toBe('57P01')
    expect(isOutage(err)).toBe(true)
    const raised = Object.assign(new Error('raised'), { code: 'P0001', severity: 'ERROR' })
    expect(sqlState(raised)).toBe('P0001')
    expect(isOutage(raised)).toBe(false)
  })
})
