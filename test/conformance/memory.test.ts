import { describeStore } from './suite.js'
import { memoryTarget } from './targets.js'

describeStore(memoryTarget)
