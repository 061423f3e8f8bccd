/** The tracker's open better-sqlite3 database. */
export const SQLITE_DB = Symbol('SQLITE_DB');
