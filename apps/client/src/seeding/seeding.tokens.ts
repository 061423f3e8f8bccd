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
  /** Connections silent for this long are closed (default 120 s; 0: never). */
  readonly idleTimeoutMs?: number;
  /** Connections served at once; one more gets `ERR BUSY` and is closed (default 512). */
  readonly maxConnections?: number;
  /** Upload rate cap over all connections, in bytes per second (undefined or 0: no cap). */
  readonly uploadLimit?: number;
  /** A capability is still honoured this long after its expiry, for clocks that differ (default 60 s). */
  readonly capabilitySkewMs?: number;
}

export type SeedingOptions = ShareRegistryOptions & ChunkServerOptions;

export const DEFAULT_PEER_MAX_LINE_BYTES = 8 * 1024;
export const DEFAULT_PEER_IDLE_TIMEOUT_MS = 120_000;
export const DEFAULT_MAX_PEER_CONNECTIONS = 512;
export const DEFAULT_CAPABILITY_SKEW_MS = 60_000;
