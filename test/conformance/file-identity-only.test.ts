import { describeStore } from './suite.js'
import { fileTarget } from './targets.js'

describeStore(fileTarget({ kernelWitness: false }))
