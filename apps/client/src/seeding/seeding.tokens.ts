/** Settings of the seeding side, bound by the app under `SEEDING_OPTIONS`. */
export const SEEDING_OPTIONS = Symbol('SEEDING_OPTIONS');

export interface ShareRegistryOptions {
  /** Folder of the client's state; the registry keeps `shares.json` there (created if missing). */
  readonly dataDir: string;
}

export interface ChunkServerOptions {
  /** The client's own `IP:PORT`, where other clients fetch chunks. */
  readonly host: string;
  readonly port: number;
  /** Longest request line accepted (default 8 KiB). */
  readonly maxLineBytes?: number;
  // connection limits and deadlines (see SeederPolicy); unset ones take their DEFAULT_SEEDER_LIMITS value
  /** A served connection that sends and reads nothing this long is closed (default 60 s; 0: never). */
  readonly idleTimeoutMs?: number;
  /** Connections served at once (default 512); one more pushes out the oldest not yet served, or gets `ERR BUSY`. */
  readonly maxConnections?: number;
  /** Connections served at once from one address; one more gets `ERR TOO_MANY_CONNECTIONS` (default 8). */
  readonly maxConnectionsPerAddress?: number;
  /** A new connection must have a request served within this (default 5 s; 0: no deadline). */
  readonly requestTimeoutMs?: number;
  /** A started request line must be complete within this (default 5 s; 0: no deadline). */
  readonly lineTimeoutMs?: number;
  /** Upload rate cap over all connections, in bytes per second (undefined or 0: no cap). */
  readonly uploadLimit?: number;
  /** A capability is still honoured this long after its expiry, for clocks that differ (default 60 s). */
  readonly capabilitySkewMs?: number;
  /** Chunks a download in progress gains within this long of each other go out in one `HAVE` line (default 10 ms). */
  readonly haveCoalesceMs?: number;
}

export type SeedingOptions = ShareRegistryOptions & ChunkServerOptions;

export const DEFAULT_PEER_MAX_LINE_BYTES = 8 * 1024;
export const DEFAULT_CAPABILITY_SKEW_MS = 60_000;
export const DEFAULT_HAVE_COALESCE_MS = 10;
