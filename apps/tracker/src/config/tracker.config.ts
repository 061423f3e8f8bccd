import { HostPort, parseHostPort, parseTrackerInfo } from '@app/protocol';
import { resolve } from 'node:path';

export const TRACKER_CONFIG = Symbol('TRACKER_CONFIG');

export interface TrackerConfig {
  /** 1-based position of this tracker in the tracker_info file. */
  readonly trackerNumber: number;
  readonly trackers: readonly HostPort[];
  readonly self: HostPort;
  readonly dataDir: string;
  /** Where to reach other trackers for sync when it differs from tracker_info (`--peer-address N=IP:PORT`). */
  readonly peerAddresses: ReadonlyMap<number, HostPort>;
  /** The network's shared secret; created beside the tracker info file when missing. */
  readonly keyFile: string;
  /** Lifetime of the download capabilities this tracker issues (`--capability-ttl`, default 1 h). */
  readonly capabilityTtlMs: number;
}

export const TRACKER_USAGE =
  'usage: tracker <tracker_info_file> <tracker_number> [--data-dir DIR] [--key-file FILE] [--peer-address N=IP:PORT] [--capability-ttl DURATION]';

/** Default `--capability-ttl`: one hour. */
export const DEFAULT_CAPABILITY_TTL_MS = 60 * 60 * 1000;

/**
 * A duration from the command line: `500ms`, `30s`, `5m`, `2h`, `7d` or a
 * bare number of seconds; undefined when it is none or not above zero.
 * (Local to the tracker config until a shared parser exists.)
 */
export function parseDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    (m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  const ms = Math.round(Number(m[1]) * scale);
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Turns argv (without node and script) into a config; throws ConfigError with a one-line reason. */
export function parseTrackerArgs(argv: readonly string[], readFile: (path: string) => string): TrackerConfig {
  const positional: string[] = [];
  let dataDir: string | undefined;
  let keyFile: string | undefined;
  const peerTexts: string[] = [];
  let capabilityTtlMs = DEFAULT_CAPABILITY_TTL_MS;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--key-file' || arg === '--peer-address') {
      const value = argv[++i];
      if (!value) throw new ConfigError(`${arg} needs a value; ${TRACKER_USAGE}`);
      if (arg === '--key-file') keyFile = value;
      else peerTexts.push(value);
    } else if (arg === '--capability-ttl') {
      const value = argv[++i];
      const ms = value === undefined ? undefined : parseDurationMs(value);
      if (ms === undefined) {
        throw new ConfigError(`--capability-ttl needs a duration such as 30s, 5m or 2h; ${TRACKER_USAGE}`);
      }
      capabilityTtlMs = ms;
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
  if (positional.length !== 2) throw new ConfigError(TRACKER_USAGE);
  const [infoFile, numberText] = positional;
  let text: string;
  try {
    text = readFile(infoFile);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError(`${infoFile}: cannot read tracker info file (${reason})`);
  }
  const trackers = parseTrackerInfo(text, infoFile);
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
    self: trackers[trackerNumber - 1],
    dataDir: resolve(dataDir ?? `data/tracker-${trackerNumber}`),
    peerAddresses,
    keyFile: resolve(keyFile ?? infoFile.replace(/(\.txt)?$/, '.key')),
    capabilityTtlMs,
  };
}
