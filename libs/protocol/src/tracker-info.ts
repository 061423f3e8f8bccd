import { HostPort, isValidHost, parseHostPort, parsePort } from './address';
import { parseFingerprint } from './tls';

export class TrackerInfoError extends Error {
  override readonly name = 'TrackerInfoError';
}

/** One tracker of a tracker_info file: its address and, when the line pins one, its certificate's fingerprint. */
export interface TrackerEntry {
  readonly address: HostPort;
  /** `sha256:<64 hex>`, normalised; absent when the line gives none (the client then trusts on first use). */
  readonly fingerprint?: string;
}

/**
 * Reads the text of a tracker_info file: one tracker per line as `IP:PORT`
 * (or `IP PORT`), optionally followed by the tracker's certificate
 * fingerprint (`127.0.0.1:6001 sha256:...`); blank lines and `#` comments are
 * ignored. Tracker number N is the Nth tracker listed, counted from 1.
 */
export function parseTrackerInfoEntries(text: string, fileName: string): TrackerEntry[] {
  const trackers: TrackerEntry[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const where = `${fileName}:${i + 1}`;
    const parts = line.split(/\s+/);
    let fingerprint: string | undefined;
    if (parts.length > 1 && parts[parts.length - 1].toLowerCase().startsWith('sha256:')) {
      const written = parts.pop()!;
      fingerprint = parseFingerprint(written);
      if (!fingerprint) {
        throw new TrackerInfoError(
          `${where}: '${written}' is not a certificate fingerprint (expected sha256: and 64 hex digits)`,
        );
      }
    }
    let addr: HostPort | undefined;
    if (parts.length === 1) addr = parseHostPort(parts[0]);
    else if (parts.length === 2 && isValidHost(parts[0])) {
      const port = parsePort(parts[1]);
      addr = port === undefined ? undefined : { host: parts[0], port };
    }
    if (!addr) {
      throw new TrackerInfoError(`${where}: '${line}' is not a tracker address (expected IP:PORT [sha256:...])`);
    }
    const key = `${addr.host}:${addr.port}`;
    if (seen.has(key)) throw new TrackerInfoError(`${where}: tracker ${key} is listed twice`);
    seen.add(key);
    trackers.push(fingerprint ? { address: addr, fingerprint } : { address: addr });
  });
  if (trackers.length === 0) throw new TrackerInfoError(`${fileName}: lists no tracker`);
  return trackers;
}

/** The trackers' addresses of a tracker_info file, in file order (see `parseTrackerInfoEntries`). */
export function parseTrackerInfo(text: string, fileName: string): HostPort[] {
  return parseTrackerInfoEntries(text, fileName).map((entry) => entry.address);
}
