import { HostPort, isValidHost, parseHostPort, parsePort } from './address';

export class TrackerInfoError extends Error {
  override readonly name = 'TrackerInfoError';
}

/**
 * Reads the text of a tracker_info file: one tracker per line as `IP:PORT`
 * (or `IP PORT`); blank lines and `#` comments are ignored. Tracker number N
 * is the Nth tracker listed, counted from 1.
 */
export function parseTrackerInfo(text: string, fileName: string): HostPort[] {
  const trackers: HostPort[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const where = `${fileName}:${i + 1}`;
    const parts = line.split(/\s+/);
    let addr: HostPort | undefined;
    if (parts.length === 1) addr = parseHostPort(parts[0]);
    else if (parts.length === 2 && isValidHost(parts[0])) {
      const port = parsePort(parts[1]);
      addr = port === undefined ? undefined : { host: parts[0], port };
    }
    if (!addr) throw new TrackerInfoError(`${where}: '${line}' is not a tracker address (expected IP:PORT)`);
    const key = `${addr.host}:${addr.port}`;
    if (seen.has(key)) throw new TrackerInfoError(`${where}: tracker ${key} is listed twice`);
    seen.add(key);
    trackers.push(addr);
  });
  if (trackers.length === 0) throw new TrackerInfoError(`${fileName}: lists no tracker`);
  return trackers;
}
