/**
 * What the server-side calls need from a connection: `pg.Client`, `pg.PoolClient` and
 * `pg.Pool` all fit. Rows are checked field by field by their readers, never trusted as typed.
 */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}
