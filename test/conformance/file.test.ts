// S1–S12 for the file store with both witnesses (kernel lock + identity).
import { describeStore } from './suite.js'
import { fileTarget } from './targets.js'

describeStore(fileTarget({ kernelWitness: true }))
