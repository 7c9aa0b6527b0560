// Internal entry point (dist/internal.js) for the CLI, tests and the chaos harness: the engine's
// building blocks, including the FileStore constructor whose test-only `faults` parameter the
// public API cannot reach. Not part of the public API; no stability promise.
export { FileStore } from './lease/file/index.js'
export type { FileStoreFaults, FileStoreOptions } from './lease/file/index.js'
export { acquireWith, leaseInternals, selfHolder } from './lease/engine.js'
export { normalizeOptions } from './lease/options.js'
export { storeFor } from './lease/api.js'
export { judge } from './lease/witness.js'
// The PostgreSQL schema's migration and its function text (with test-only faults), for the chaos
// harness's --store postgres runs and their negative controls.
export { functionsSql, migrate } from './lease/postgres/schema.js'
