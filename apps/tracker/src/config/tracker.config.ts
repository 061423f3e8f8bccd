import {
  HostPort,
  parseBytes,
  parseDuration,
  parseHostPort,
  parseTrackerInfoEntries,
  tryParseDuration,
} from '@app/protocol';
import { resolve } from 'node:path';
import { TRACKER_LOG_LEVELS, TrackerLogLevel } from '../logging/tracker.logger';

export const TRACKER_CONFIG = Symbol('TRACKER_CONFIG');

export interface TrackerConfig {
  /** 1-based position of this tracker in the tracker_info file. */
  readonly trackerNumber: number;
  readonly trackers: readonly HostPort[];
  /** Per tracker, in file order: the certificate fingerprint tracker_info.txt pins for it, or undefined. */
  readonly trackerPins?: readonly (string | undefined)[];
  readonly self: HostPort;
  readonly dataDir: string;
  /** Where to reach other trackers for sync when it differs from tracker_info (`--peer-address N=IP:PORT`). */
  readonly peerAddresses: ReadonlyMap<number, HostPort>;
  /** The network's shared secret; created beside the tracker info file when missing. */
  readonly keyFile: string;
  /** What one peer may take of the tracker (`--max-conns`, `--idle-timeout`, ...). */
  readonly limits: TrackerLimits;
  /** A session token nobody holds stops resuming after this long (`--session-idle`, default 1 h). */
  readonly sessionIdleMs: number;
  /** A session token stops resuming this long after login (`--session-max-age`, default 7 d). */
  readonly sessionMaxAgeMs: number;
  /** Lifetime of the download capabilities this tracker issues (`--capability-ttl`, default 1 h). */
  readonly capabilityTtlMs: number;
  /** Compact the op log once it holds this many changes past its snapshot (`--compact-after`; 0: never). */
  readonly compactAfterOps?: number;
  /**
   * A tracker whose link has been down this long no longer holds compaction back (`--compact-offline-after`;
   * unset: an offline tracker holds it back until it is back). See docs/PROTOCOL.md 6.10 for the consequence.
   */
  readonly compactOfflineAfterMs?: number;
  /** Port of the HTTP server for `/healthz` and `/metrics` on this tracker's host (`--http-port`; unset: none). */
  readonly httpPort?: number;
  /** `--log-level` (or `TRACKER_LOG_LEVEL`; `TRACKER_LOG=debug` is an older alias of debug); default info. */
  readonly logLevel?: TrackerLogLevel;
  /** `--log-format json|text` (or `TRACKER_LOG_FORMAT`); unset: JSON unless stdout and stderr are a terminal. */
  readonly logFormat?: 'json' | 'text';
  /** `--require-tls`: plain-text logins (`login`, `resume`, `create_user` outside TLS) are refused. */
  readonly requireTls?: boolean;
  /** `--print-fingerprint`: print the identity's fingerprint (making the identity if missing) and exit. */
  readonly printFingerprint?: boolean;
}

/** Connection, buffering and login limits; README "Limits" says what happens past each. */
export interface TrackerLimits {
  /** Open connections from one remote address (authenticated trackers do not count). */
  readonly maxConnsPerIp: number;
  /** Open connections in all (lowered at start-up to fit the process's open-file limit). */
  readonly maxConns: number;
  /** A connection with no one logged in is closed after this long without a complete line (0: never). */
  readonly idleTimeoutLoginMs: number;
  /** A logged-in (or tracker) connection is closed after this long without a complete line (0: never). */
  readonly idleTimeoutMs: number;
  /** Longest request line from a client. */
  readonly maxLineBytes: number;
  /** Continuation lines (`upload_file ... @N`) one connection may have waiting for their command. */
  readonly maxBufferedBytes: number;
  /** Continuation lines (and the digests of streamed upload_file lines) all connections together may have waiting. */
  readonly maxPendingBytes: number;
  /** Longest `upload_file` line with its hashes inline, from a logged-in client (read as it streams in). */
  readonly maxUploadLineBytes: number;
  /** Password hashes (create_user, login) computed at once, and how many more may wait for a turn. */
  readonly maxScrypt: number;
  readonly maxScryptQueue: number;
  /** Of those running or waiting, how many one remote address may have (so that it cannot fill the queue). */
  readonly maxScryptPerIp: number;
  /** Failed logins (per address, per user and address) before each further try waits; the wait doubles up to the max. */
  readonly loginBackoffAfter: number;
  readonly loginBackoffMaxMs: number;
}

export const DEFAULT_TRACKER_LIMITS: TrackerLimits = {
  maxConnsPerIp: 64,
  maxConns: 10_000,
  idleTimeoutLoginMs: 15_000,
  idleTimeoutMs: 3_600_000,
  maxLineBytes: 64 * 1024,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxPendingBytes: 256 * 1024 * 1024,
  maxUploadLineBytes: 192 * 1024 * 1024, // 4,096,000 inline hashes (41 bytes each) and a head of --max-line
  maxScrypt: 2,
  maxScryptQueue: 64,
  maxScryptPerIp: 8,
  loginBackoffAfter: 5,
  loginBackoffMaxMs: 300_000,
};

/**
 * The longest line one tracker sends another. A replicated upload_file carries the whole hash list on one line,
 * so a link must take the longest op any tracker of the network can commit: a peer that refused one would
 * refuse it again on every reconnect, and nothing after it would ever replicate. Every tracker uses this one
 * constant, and refuses limits that would let a client make a longer op (`longestOpLineBytes`).
 */
export const MAX_SYNC_LINE_BYTES = 256 * 1024 * 1024;

/** An op line's fields besides the command's own text (marker, stamps, actor, request id) and its MAC. */
export const SYNC_LINE_OVERHEAD_BYTES = 64 * 1024;

/**
 * The longest op line a client's command can make under `limits`: the longest upload_file (inline, or a head
 * with its `@N` lines), its head once more (quoting a path may double it), and the op's own fields.
 */
export function longestOpLineBytes(limits: TrackerLimits): number {
  const command = Math.max(limits.maxUploadLineBytes, limits.maxLineBytes + limits.maxBufferedBytes);
  return command + limits.maxLineBytes + SYNC_LINE_OVERHEAD_BYTES;
}

/** `--flag VALUE` -> the limit it sets, how its value is read, and the least value that makes sense. */
const LIMIT_FLAGS: Readonly<Record<string, [keyof TrackerLimits, (text: string) => number, number]>> = {
  '--max-conns-per-ip': ['maxConnsPerIp', count, 1],
  '--max-conns': ['maxConns', count, 1],
  '--idle-timeout-login': ['idleTimeoutLoginMs', parseDuration, 0],
  '--idle-timeout': ['idleTimeoutMs', parseDuration, 0],
  '--max-line': ['maxLineBytes', parseBytes, 1024],
  '--max-buffered': ['maxBufferedBytes', parseBytes, 0],
  '--max-pending': ['maxPendingBytes', parseBytes, 0],
  '--max-upload-line': ['maxUploadLineBytes', parseBytes, 1024],
  '--max-scrypt': ['maxScrypt', count, 1],
  '--max-scrypt-queue': ['maxScryptQueue', count, 0],
  '--max-scrypt-per-ip': ['maxScryptPerIp', count, 1],
  '--login-backoff-after': ['loginBackoffAfter', count, 1],
  '--login-backoff-max': ['loginBackoffMaxMs', parseDuration, 0],
};

function count(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new RangeError(`'${text}' is not a whole number`);
  return Number(text);
}

export const TRACKER_USAGE =
  'usage: tracker <tracker_info_file> <tracker_number> [--data-dir DIR] [--key-file FILE] [--log-level LEVEL] [--log-format FORMAT] [--peer-address N=IP:PORT]' +
  ' [--max-conns-per-ip N] [--max-conns N] [--idle-timeout-login DURATION] [--idle-timeout DURATION]' +
  ' [--max-line BYTES] [--max-buffered BYTES] [--max-pending BYTES] [--max-upload-line BYTES] [--max-scrypt N] [--max-scrypt-queue N]' +
  ' [--max-scrypt-per-ip N] [--login-backoff-after N] [--login-backoff-max DURATION]' +
  ' [--session-idle DURATION] [--session-max-age DURATION] [--capability-ttl DURATION] [--compact-after N] [--compact-offline-after DURATION]' +
  ' [--http-port PORT] [--require-tls] [--print-fingerprint]';

/** The environment equivalent of `--require-tls`: `1`, `true` or `yes` (`0`, `false`, `no` or empty: off). */
export const ENV_REQUIRE_TLS = 'TRACKER_REQUIRE_TLS';

function parseSwitch(text: string, source: string): boolean {
  const value = text.trim().toLowerCase();
  if (['1', 'true', 'yes'].includes(value)) return true;
  if (['', '0', 'false', 'no'].includes(value)) return false;
  throw new ConfigError(`${source} must be 1, true or yes (or 0, false, no), not '${text}'`);
}

/** The environment equivalent of `--http-port` (the flag wins). */
export const ENV_HTTP_PORT = 'TRACKER_HTTP_PORT';

/** `--http-port`'s value: a port number 0-65535 (0: any free port). */
function parseHttpPort(text: string | undefined, source: string): number {
  const port = /^\d{1,5}$/.test(text ?? '') ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new ConfigError(`${source} needs a port number 0-65535; ${TRACKER_USAGE}`);
  return port;
}

/** Default `--capability-ttl`: one hour. */
export const DEFAULT_CAPABILITY_TTL_MS = 60 * 60 * 1000;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** What `tracker --help` prints (to stdout, exit 0). */
export const TRACKER_HELP = `${TRACKER_USAGE.replace(/ \[--max-conns-per-ip.*$/, ' [LIMIT FLAGS...]')}

Runs tracker <tracker_number> (1-based) of the network listed in <tracker_info_file> (one IP:PORT a line).

Options (a flag wins over its environment variable):
  --data-dir DIR             where the database lives (default data/tracker-<N>)      env TRACKER_DATA_DIR
  --key-file FILE            the network's shared key (default beside the info file)  env TRACKER_KEY_FILE
  --log-level LEVEL          error, warn, info (default) or debug                     env TRACKER_LOG_LEVEL
  --log-format FORMAT        json or text (default: text on a terminal, else json)    env TRACKER_LOG_FORMAT
  --peer-address N=IP:PORT   reach tracker N for sync at this address instead
  --session-idle, --session-max-age, --capability-ttl DURATION (30s, 5m, 2h, 7d)
  --compact-after N, --compact-offline-after DURATION
  --http-port PORT           serve /healthz and /metrics on this port (default none)  env TRACKER_HTTP_PORT
  --require-tls              refuse login, resume and create_user outside TLS          env TRACKER_REQUIRE_TLS=1
  --print-fingerprint        print this tracker's certificate fingerprint (sha256:...), making its identity
                             in the data dir if missing, and exit
  --max-conns-per-ip N, --max-conns N, --idle-timeout-login DURATION, --idle-timeout DURATION,
  --max-line BYTES, --max-buffered BYTES, --max-pending BYTES, --max-upload-line BYTES, --max-scrypt N,
  --max-scrypt-queue N, --max-scrypt-per-ip N, --login-backoff-after N, --login-backoff-max DURATION
  -h, --help                 print this help and exit
  -V, --version              print the version and exit

Logs: one line per event on stdout (errors on stderr); JSON lines unless both are a terminal; no colour
with NO_COLOR set. Exit status: 0 for --help, --version and --print-fingerprint, 2 for bad arguments or an
unusable identity (identity.key readable by others, half an identity), 1 when it cannot start (port taken,
newer database); on SIGINT or SIGTERM it closes cleanly and ends by that signal (130, 143).`;

/** `--help`/`-h` or `--version`/`-V` anywhere in argv (the first one wins); undefined when neither. */
export function infoRequest(argv: readonly string[]): 'help' | 'version' | undefined {
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') return 'help';
    if (arg === '--version' || arg === '-V') return 'version';
  }
  return undefined;
}

/** The log level from `TRACKER_LOG_LEVEL`, else `TRACKER_LOG=debug`, else info. */
function envLogLevel(env: NodeJS.ProcessEnv): TrackerLogLevel {
  const text = env.TRACKER_LOG_LEVEL;
  if (text) {
    const level = logLevelOf(text);
    if (!level)
      throw new ConfigError(`TRACKER_LOG_LEVEL must be one of ${TRACKER_LOG_LEVELS.join(', ')}, not '${text}'`);
    return level;
  }
  return env.TRACKER_LOG === 'debug' ? 'debug' : 'info';
}

const logLevelOf = (text: string): TrackerLogLevel | undefined =>
  (TRACKER_LOG_LEVELS as readonly string[]).includes(text) ? (text as TrackerLogLevel) : undefined;

/** Turns argv (without node and script) into a config; throws ConfigError with a one-line reason. */
export function parseTrackerArgs(
  argv: readonly string[],
  readFile: (path: string) => string,
  env: Readonly<Record<string, string | undefined>> = {},
): TrackerConfig {
  const positional: string[] = [];
  let dataDir: string | undefined = env.TRACKER_DATA_DIR || undefined;
  let keyFile: string | undefined = env.TRACKER_KEY_FILE || undefined;
  let logLevel: TrackerLogLevel | undefined;
  let logFormat: string | undefined = env.TRACKER_LOG_FORMAT || undefined;
  const peerTexts: string[] = [];
  const limits: { -readonly [K in keyof TrackerLimits]: number } = { ...DEFAULT_TRACKER_LIMITS };
  const session = { idle: 60 * 60_000, maxAge: 7 * 24 * 60 * 60_000 };
  let capabilityTtlMs = DEFAULT_CAPABILITY_TTL_MS;
  let compactAfterOps: number | undefined;
  let compactOfflineAfterMs: number | undefined;
  let requireTls = parseSwitch(env[ENV_REQUIRE_TLS] ?? '', ENV_REQUIRE_TLS);
  let printFingerprint = false;
  let httpPort = env[ENV_HTTP_PORT]?.trim() ? parseHttpPort(env[ENV_HTTP_PORT]?.trim(), ENV_HTTP_PORT) : undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const limit = LIMIT_FLAGS[arg.split('=')[0]];
    if (limit) {
      const [key, parse, least] = limit;
      const text = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      let value: number;
      try {
        value = parse(text ?? '');
      } catch (err) {
        throw new ConfigError(`${arg.split('=')[0]}: ${(err as Error).message}; ${TRACKER_USAGE}`);
      }
      if (value < least) throw new ConfigError(`${arg.split('=')[0]} must be at least ${least}`);
      limits[key] = value;
    } else if (arg === '--key-file' || arg === '--peer-address') {
      const value = argv[++i];
      if (!value) throw new ConfigError(`${arg} needs a value; ${TRACKER_USAGE}`);
      if (arg === '--key-file') keyFile = value;
      else peerTexts.push(value);
    } else if (arg === '--session-idle' || arg === '--session-max-age') {
      const ms = parseSessionDuration(argv[++i]);
      if (ms === undefined)
        throw new ConfigError(`${arg} needs a duration of 1s to 10 years, such as 30s, 5m, 2h or 7d; ${TRACKER_USAGE}`);
      session[arg === '--session-idle' ? 'idle' : 'maxAge'] = ms;
    } else if (arg === '--capability-ttl') {
      const ms = tryParseDuration(argv[++i]);
      if (ms === undefined || ms <= 0) {
        throw new ConfigError(`--capability-ttl needs a duration such as 30s, 5m or 2h; ${TRACKER_USAGE}`);
      }
      capabilityTtlMs = ms;
    } else if (arg === '--compact-after') {
      const text = argv[++i] ?? '';
      if (!/^\d{1,15}$/.test(text)) {
        throw new ConfigError(`--compact-after needs a number of changes (0: never compact); ${TRACKER_USAGE}`);
      }
      compactAfterOps = Number(text);
    } else if (arg === '--compact-offline-after') {
      const ms = tryParseDuration(argv[++i]);
      if (ms === undefined || ms <= 0) {
        throw new ConfigError(`--compact-offline-after needs a duration such as 30m, 2h or 7d; ${TRACKER_USAGE}`);
      }
      compactOfflineAfterMs = ms;
    } else if (arg === '--http-port' || arg.startsWith('--http-port=')) {
      httpPort = parseHttpPort(arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i], '--http-port');
    } else if (arg === '--log-level' || arg.startsWith('--log-level=')) {
      const text = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      logLevel = logLevelOf(text ?? '');
      if (!logLevel)
        throw new ConfigError(`--log-level needs one of ${TRACKER_LOG_LEVELS.join(', ')}; ${TRACKER_USAGE}`);
    } else if (arg === '--log-format' || arg.startsWith('--log-format=')) {
      logFormat = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (logFormat !== 'json' && logFormat !== 'text') {
        throw new ConfigError(`--log-format needs json or text; ${TRACKER_USAGE}`);
      }
    } else if (arg === '--require-tls') {
      requireTls = true;
    } else if (arg === '--print-fingerprint') {
      printFingerprint = true;
    } else if (arg === '--data-dir') {
      dataDir = argv[++i];
      if (!dataDir) throw new ConfigError(`--data-dir needs a directory; ${TRACKER_USAGE}`);
    } else if (arg.startsWith('--data-dir=')) {
      dataDir = arg.slice('--data-dir='.length);
      if (!dataDir) throw new ConfigError(`--data-dir needs a directory; ${TRACKER_USAGE}`);
    } else if (arg.startsWith('-') && arg !== '-' && !/^-\d+$/.test(arg)) {
      throw new ConfigError(`unknown option ${arg}; ${TRACKER_USAGE}`);
    } else {
      positional.push(arg);
    }
  }
  if (longestOpLineBytes(limits) > MAX_SYNC_LINE_BYTES) {
    throw new ConfigError(
      `--max-upload-line, or --max-line plus --max-buffered, too large: an upload_file could not replicate to the other trackers (they take lines of ${MAX_SYNC_LINE_BYTES} bytes)`,
    );
  }
  if (positional.length !== 2) throw new ConfigError(TRACKER_USAGE);
  logLevel ??= envLogLevel(env);
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'text') {
    throw new ConfigError(`TRACKER_LOG_FORMAT must be json or text, not '${logFormat}'`);
  }
  const [infoFile, numberText] = positional;
  let text: string;
  try {
    text = readFile(infoFile);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError(`${infoFile}: cannot read tracker info file (${reason})`);
  }
  const entries = parseTrackerInfoEntries(text, infoFile);
  const trackers = entries.map((entry) => entry.address);
  const trackerNumber = /^\d{1,4}$/.test(numberText) ? Number(numberText) : NaN;
  if (!(trackerNumber >= 1 && trackerNumber <= trackers.length)) {
    throw new ConfigError(
      `${infoFile}: tracker number '${numberText}' is out of range (the file lists ${trackers.length} tracker${trackers.length === 1 ? '' : 's'}: use 1-${trackers.length})`,
    );
  }
  const peerAddresses = new Map<number, HostPort>();
  for (const text of peerTexts) {
    const m = /^(\d{1,4})=(.+)$/.exec(text);
    const address = m ? parseHostPort(m[2]) : undefined;
    const n = m ? Number(m[1]) : NaN;
    if (!address || !(n >= 1 && n <= trackers.length) || n === trackerNumber) {
      throw new ConfigError(`--peer-address '${text}' must be N=IP:PORT for another tracker N of the file`);
    }
    peerAddresses.set(n, address);
  }
  return {
    trackerNumber,
    trackers,
    trackerPins: entries.map((entry) => entry.fingerprint),
    self: trackers[trackerNumber - 1],
    dataDir: resolve(dataDir ?? `data/tracker-${trackerNumber}`),
    peerAddresses,
    keyFile: resolve(keyFile ?? infoFile.replace(/(\.txt)?$/, '.key')),
    limits,
    sessionIdleMs: session.idle,
    sessionMaxAgeMs: session.maxAge,
    capabilityTtlMs,
    ...(compactAfterOps !== undefined && { compactAfterOps }),
    ...(compactOfflineAfterMs !== undefined && { compactOfflineAfterMs }),
    ...(httpPort !== undefined && { httpPort }),
    logLevel,
    ...(logFormat !== undefined && { logFormat }),
    ...(requireTls && { requireTls }),
    ...(printFingerprint && { printFingerprint }),
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, '': 1000 };

/** `500ms`, `30s`, `5m`, `2h`, `7d` or bare seconds, to milliseconds (at least 1 s, at most 10 years). */
function parseSessionDuration(text: string | undefined): number | undefined {
  const m = /^(\d{1,9})(ms|s|m|h|d|)$/.exec(text ?? '');
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2]] : NaN;
  return ms >= 1000 && ms <= 10 * 365 * 86_400_000 ? ms : undefined;
}
