// S1–S12 for the PostgreSQL store with both witnesses: the holder's session lock and observed expiry.
import { describeStore } from './suite.js'
import { postgresTarget } from './targets.js'

describeStore(postgresTarget({ witness: 'session' }))
