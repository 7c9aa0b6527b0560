// Passwords in --store / PROCLEASE_STORE URLs are never shown: masking and redaction.
import { describe, expect, it } from 'vitest'
import { maskUrl, redactor } from '../../lib/cli/store.js'

describe('store URL masking', () => {
  it.each([
    ['postgres://app:s3cret@db.internal/ops', 'postgres://app:***@db.internal/ops'],
    ['postgresql://app:p%40ss@db:5432/ops?sslmode=require', 'postgresql://app:***@db:5432/ops?sslmode=require'],
    // A raw '@' or '/' in the password: the user-info ends at the last '@'.
    ['postgres://app:p@ss/w@db/ops', 'postgres://app:***@db/ops'],
    ['postgresql:///ops?host=/run/postgresql&password=hunter2&user=app', 'postgresql:///ops?host=/run/postgresql&password=***&user=app'],
    ['postgres://app:one@db/ops?password=two', 'postgres://app:***@db/ops?password=***'],
    ['postgresql://postgres@/postgres?host=%2Ftmp%2Fpg&port=5432', 'postgresql://postgres@/postgres?host=%2Ftmp%2Fpg&port=5432'],
    ['postgres://db.internal/ops', 'postgres://db.internal/ops'],
  ])('%s', (url, shown) => {
    expect(maskUrl(url)).toBe(shown)
  })

  it('redacts every form of the password, and the URL, from server and driver text', () => {
    const url = 'postgres://app:p%40ss@db/ops?password=hunter2'
    const redact = redactor(url)
    const text = `connect to ${url} failed: password "p@ss" (p%40ss) or hunter2 rejected`
    const out = redact(text)
    for (const secret of ['p@ss', 'p%40ss', 'hunter2']) expect(out).not.toContain(secret)
    expect(out).toBe('connect to postgres://app:***@db/ops?password=*** failed: password "***" (***) or *** rejected')
  })
})
