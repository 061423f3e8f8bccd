import { HostPort, parseHostPort, parseTrackerInfoEntries, tryParseDuration } from '@app/protocol';
import { resolve } from 'node:path';

export interface ClientConfig {
  /** Address this client serves file chunks on. */
  readonly self: HostPort;
  readonly trackerInfoFile: string;
  /** Trackers in file order; the client talks to the first one that answers. */
  readonly trackers: readonly HostPort[];
  /** Per tracker, in file order: the certificate fingerprint the tracker info file pins for it, or undefined. */
  readonly trackerPins?: readonly (string | undefined)[];
  /** Where downloads and seeding state will live (not created yet). */
  readonly dataDir: string;
  readonly connectTimeoutMs: number;
  /** Cap on the bytes per second this client uploads to other peers (undefined: none); changeable at run time. */
  readonly uploadLimit?: number;
  /** Cap on the bytes per second this client downloads, over all its downloads (undefined: none). */
  readonly downloadLimit?: number;
  /** Whether downloads serve their verified chunks while still downloading (undefined: on). */
  readonly partialSeeding?: boolean;
  /** How long after its expiry this client, seeding, still honours a capability (undefined: the default, 60 s). */
  readonly capabilitySkewMs?: number;
  /** Limits of the chunk server given on the command line (undefined: all defaults). */
  readonly peerLimits?: PeerLimits;
  /** A download fails once it has verified no chunk for this long (0: it waits for ever; undefined: 10 min). */
  readonly stallTimeoutMs?: number;
  /** Port of the HTTP server for `/metrics` on this client's host (`--metrics-port`; unset: none). */
  readonly metricsPort?: number;
  /** What the client logs on stderr (`--log-level`, `P2P_LOG_LEVEL`); `off`, the default, logs nothing. */
  readonly logLevel?: ClientLogLevel;
  /** `--no-tls` or P2P_NO_TLS=1: tracker connections in plain text, without STARTTLS (undefined: TLS). */
  readonly noTls?: boolean;
}

/** Log levels the client takes, quietest first; `info` is Nest's `log`. */
export const CLIENT_LOG_LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'verbose'] as const;
export type ClientLogLevel = (typeof CLIENT_LOG_LEVELS)[number];

/** A log level name (any case), or undefined. */
export function parseLogLevel(text: string): ClientLogLevel | undefined {
  const t = text.trim().toLowerCase();
  return (CLIENT_LOG_LEVELS as readonly string[]).includes(t) ? (t as ClientLogLevel) : undefined;
}

/** Chunk server connection limits; each unset one keeps its default (see the seeding policy). */
export interface PeerLimits {
  readonly maxConnections?: number;
  readonly maxConnectionsPerAddress?: number;
  readonly requestTimeoutMs?: number;
  readonly lineTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
}

export interface ClientOptions {
  readonly dataDir?: string;
  readonly uploadLimit?: string;
  readonly downloadLimit?: string;
  /** false with `--no-partial-seeding`, true with `--partial-seeding`, undefined when neither is given. */
  readonly partialSeeding?: boolean;
  readonly maxPeerConns?: string;
  readonly maxPeerConnsPerIp?: string;
  readonly peerRequestTimeout?: string;
  readonly peerLineTimeout?: string;
  readonly peerIdleTimeout?: string;
  readonly capabilitySkew?: string;
  readonly stallTimeout?: string;
  readonly metricsPort?: string;
  readonly logLevel?: string;
  /** false with `--no-tls` (commander's negated flag; true or undefined otherwise). */
  readonly tls?: boolean;
  /** true with `--print-fingerprint`: print this client's fingerprint and exit. */
  readonly printFingerprint?: boolean;
}

export const CLIENT_USAGE =
  'usage: client <IP:PORT> <tracker_info_file> [--data-dir DIR] [--upload-limit RATE] [--download-limit RATE]' +
  ' [--no-partial-seeding]' +
  ' [--max-peer-conns N] [--max-peer-conns-per-ip N]' +
  ' [--peer-request-timeout TIME] [--peer-line-timeout TIME] [--peer-idle-timeout TIME] [--capability-skew TIME]' +
  ' [--stall-timeout TIME] [--metrics-port PORT] [--log-level LEVEL] [--no-tls] [--print-fingerprint]' +
  ' [--help] [--version]';

/** The environment equivalent of `--metrics-port` (the flag wins). */
export const ENV_METRICS_PORT = 'P2P_METRICS_PORT';

/** `--metrics-port` or else P2P_METRICS_PORT: a port 0-65535 (0: any free one), or undefined when neither is set. */
function parseMetricsPort(options: ClientOptions, env: ClientEnv): number | undefined {
  const [source, text] =
    options.metricsPort !== undefined
      ? ['--metrics-port', options.metricsPort]
      : [ENV_METRICS_PORT, env[ENV_METRICS_PORT]?.trim() || undefined];
  if (text === undefined) return undefined;
  const port = /^\d{1,5}$/.test(text.trim()) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw new ConfigError(`${source} '${text}' is not a port number 0-65535; ${CLIENT_USAGE}`);
  }
  return port;
}

/** `500ms`, `30s`, `5m`, `2h`, `7d` or a bare number of seconds, in milliseconds; `0` is allowed. */
export const parseDurationMs = (text: string): number | undefined => tryParseDuration(text);

/** The chunk server limits among `options`; throws ConfigError naming the flag of a bad value. */
function parsePeerLimits(options: ClientOptions): PeerLimits | undefined {
  const count = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new ConfigError(`${flag} '${text}' is not a whole number of connections (1 or more); ${CLIENT_USAGE}`);
    }
    return n;
  };
  const duration = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const ms = parseDurationMs(text);
    if (ms === undefined) {
      throw new ConfigError(`${flag} '${text}' is not a duration such as 500ms, 30s or 5m (0: none); ${CLIENT_USAGE}`);
    }
    return ms;
  };
  const limits: PeerLimits = {
    maxConnections: count('--max-peer-conns', options.maxPeerConns),
    maxConnectionsPerAddress: count('--max-peer-conns-per-ip', options.maxPeerConnsPerIp),
    requestTimeoutMs: duration('--peer-request-timeout', options.peerRequestTimeout),
    lineTimeoutMs: duration('--peer-line-timeout', options.peerLineTimeout),
    idleTimeoutMs: duration('--peer-idle-timeout', options.peerIdleTimeout),
  };
  return Object.values(limits).some((v) => v !== undefined) ? limits : undefined;
}

/** `500K`, `5M`, `1G` (per second, powers of 1024) or a plain number of bytes per second. */
export function parseRate(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(text.trim());
  if (!m) return undefined;
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
  const rate = Math.round(Number(m[1]) * scale);
  return rate > 0 ? rate : undefined;
}

/** The smallest rate limit that is not "none": below it one 512 KiB chunk would take over eight minutes. */
export const MIN_RATE_LIMIT = 1024;

/** What a rate limit may be written as, for error messages. */
export const RATE_LIMIT_FORMS = `a rate such as 500K, 5M or 1G per second (at least 1K), or 0, none or off for no limit`;

/**
 * A rate limit in bytes per second, 0 for none: `500K`, `5M`, `1G`, a plain number of bytes per second (at least
 * MIN_RATE_LIMIT), or `0`, `none`, `off`. Undefined for anything else.
 */
export function parseRateLimit(text: string): number | undefined {
  if (/^\s*(0+(\.0*)?|none|off)\s*$/i.test(text)) return 0;
  const rate = parseRate(text);
  return rate !== undefined && Number.isSafeInteger(rate) && rate >= MIN_RATE_LIMIT ? rate : undefined;
}

/** `on` or `off` (any case) as a boolean; undefined for anything else. */
export function parseSwitch(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  return t === 'on' ? true : t === 'off' ? false : undefined;
}

/** Environment variables the client reads; a flag given on the command line wins over its variable. */
export const ENV_UPLOAD_LIMIT = 'P2P_UPLOAD_LIMIT';
export const ENV_DOWNLOAD_LIMIT = 'P2P_DOWNLOAD_LIMIT';
export const ENV_PARTIAL_SEEDING = 'P2P_PARTIAL_SEEDING';
export const ENV_DATA_DIR = 'P2P_DATA_DIR';
export const ENV_LOG_LEVEL = 'P2P_LOG_LEVEL';
export const ENV_NO_TLS = 'P2P_NO_TLS';

/** The one line the client prints at start with `--no-tls`. */
export const NO_TLS_WARNING = 'warning: --no-tls: passwords, tokens and file bytes cross the network in clear';

/** `--no-tls`, else P2P_NO_TLS (`1`, `true`, `yes` or `on`: plain; `0`, `false`, `no`, `off` or empty: TLS). */
function noTlsOf(flag: boolean | undefined, env: ClientEnv): boolean {
  if (flag) return true;
  const text = env[ENV_NO_TLS]?.trim().toLowerCase();
  if (!text) return false;
  if (['1', 'true', 'yes', 'on'].includes(text)) return true;
  if (['0', 'false', 'no', 'off'].includes(text)) return false;
  throw new ConfigError(`${ENV_NO_TLS} '${env[ENV_NO_TLS]}' is not 1 or 0; ${CLIENT_USAGE}`);
}

/** The log level from `--log-level`, else `P2P_LOG_LEVEL`, else off; throws ConfigError naming a bad value's source. */
export function logLevelOf(flagText: string | undefined, env: ClientEnv): ClientLogLevel {
  const fromEnv = env[ENV_LOG_LEVEL]?.trim() ? env[ENV_LOG_LEVEL] : undefined;
  const [source, text] = flagText !== undefined ? ['--log-level', flagText] : [ENV_LOG_LEVEL, fromEnv];
  if (text === undefined) return 'off';
  const level = parseLogLevel(text);
  if (level === undefined) {
    throw new ConfigError(`${source} '${text}' is not one of ${CLIENT_LOG_LEVELS.join(', ')}; ${CLIENT_USAGE}`);
  }
  return level;
}

export type ClientEnv = Readonly<Record<string, string | undefined>>;

/** The transfer settings from the flags, else from the environment (an empty variable counts as unset). */
function parseTransferOptions(
  options: ClientOptions,
  env: ClientEnv,
): Pick<ClientConfig, 'uploadLimit' | 'downloadLimit' | 'partialSeeding'> {
  const given = (name: string): string | undefined => (env[name]?.trim() ? env[name] : undefined);
  const limit = (flag: string, variable: string, flagText: string | undefined): number | undefined => {
    const [source, text] = flagText !== undefined ? [flag, flagText] : [variable, given(variable)];
    if (text === undefined) return undefined;
    const rate = parseRateLimit(text);
    if (rate === undefined) throw new ConfigError(`${source} '${text}' is not ${RATE_LIMIT_FORMS}; ${CLIENT_USAGE}`);
    return rate === 0 ? undefined : rate;
  };
  let partialSeeding = options.partialSeeding;
  const switchText = given(ENV_PARTIAL_SEEDING);
  if (partialSeeding === undefined && switchText !== undefined) {
    partialSeeding = parseSwitch(switchText);
    if (partialSeeding === undefined) {
      throw new ConfigError(`${ENV_PARTIAL_SEEDING} '${switchText}' is not on or off; ${CLIENT_USAGE}`);
    }
  }
  return {
    uploadLimit: limit('--upload-limit', ENV_UPLOAD_LIMIT, options.uploadLimit),
    downloadLimit: limit('--download-limit', ENV_DOWNLOAD_LIMIT, options.downloadLimit),
    partialSeeding: partialSeeding ?? true,
  };
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Turns the positional arguments and options (already split by commander), and
 * the `P2P_*` variables of `env`, into a config; throws ConfigError (or
 * TrackerInfoError) with a one-line reason.
 */
export function parseClientArgs(
  positional: readonly string[],
  options: ClientOptions,
  readFile: (path: string) => string,
  env: ClientEnv = {},
): ClientConfig {
  if (positional.length !== 2) throw new ConfigError(CLIENT_USAGE);
  const [addressText, trackerInfoFile] = positional;
  const self = parseHostPort(addressText);
  if (!self) throw new ConfigError(`'${addressText}' is not an IP:PORT address; ${CLIENT_USAGE}`);
  if (options.dataDir !== undefined && options.dataDir.trim() === '') {
    throw new ConfigError(`--data-dir needs a directory; ${CLIENT_USAGE}`);
  }
  const dataDir = options.dataDir ?? (env[ENV_DATA_DIR]?.trim() ? env[ENV_DATA_DIR] : undefined);
  const logLevel = logLevelOf(options.logLevel, env);
  const transfer = parseTransferOptions(options, env);
  const peerLimits = parsePeerLimits(options);
  const capabilitySkewMs = options.capabilitySkew === undefined ? undefined : parseDurationMs(options.capabilitySkew);
  if (options.capabilitySkew !== undefined && capabilitySkewMs === undefined) {
    throw new ConfigError(
      `--capability-skew '${options.capabilitySkew}' is not a duration such as 30s or 500ms; ${CLIENT_USAGE}`,
    );
  }
  const stallTimeoutMs = options.stallTimeout === undefined ? undefined : parseDurationMs(options.stallTimeout);
  if (options.stallTimeout !== undefined && stallTimeoutMs === undefined) {
    throw new ConfigError(
      `--stall-timeout '${options.stallTimeout}' is not a duration such as 30s or 10m (0: wait for ever); ${CLIENT_USAGE}`,
    );
  }
  const metricsPort = parseMetricsPort(options, env);
  const noTls = noTlsOf(options.tls === false, env);
  let text: string;
  try {
    text = readFile(trackerInfoFile);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError(`${trackerInfoFile}: cannot read tracker info file (${reason})`);
  }
  const entries = parseTrackerInfoEntries(text, trackerInfoFile);
  const trackers = entries.map((entry) => entry.address);
  const dirHost = self.host.replace(/[^A-Za-z0-9.-]/g, '_');
  return {
    self,
    trackerInfoFile,
    trackers,
    trackerPins: entries.map((entry) => entry.fingerprint),
    dataDir: resolve(dataDir ?? `data/client-${dirHost}-${self.port}`),
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    ...transfer,
    peerLimits,
    ...(capabilitySkewMs === undefined ? {} : { capabilitySkewMs }),
    ...(stallTimeoutMs === undefined ? {} : { stallTimeoutMs }),
    ...(metricsPort === undefined ? {} : { metricsPort }),
    logLevel,
    ...(noTls ? { noTls } : {}),
  };
}
