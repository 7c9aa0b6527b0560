// S1–S12 for the file store judging by identity alone (as on a filesystem whose locks are not trusted).
import { describeStore } from './suite.js'
import { fileTarget } from './targets.js'

describeStore(fileTarget({ kernelWitness: false }))
