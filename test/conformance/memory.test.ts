// S1–S12 for the in-memory reference store: the engine against a store with no I/O.
import { describeStore } from './suite.js'
import { memoryTarget } from './targets.js'

describeStore(memoryTarget)
