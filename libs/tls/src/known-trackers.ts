import { parseFingerprint } from '@app/protocol';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { FingerprintMismatchError } from './errors';

/** The client's record of the trackers it trusted on first use, in its data directory. */
export const KNOWN_TRACKERS_FILE = 'known_trackers';

/**
 * Trust on first use, as ssh's known_hosts: the first fingerprint a tracker
 * address presents is kept, one `IP:PORT sha256:...` line per tracker, and a
 * different one later is refused. The file is read on every check, so a line
 * removed by hand (a tracker that really got a new key) takes effect at once.
 */
export class KnownTrackers {
  constructor(readonly file: string) {}

  /** The fingerprint kept for `address` (`IP:PORT`), if any. */
  get(address: string): string | undefined {
    return this.read().get(address);
  }

  /**
   * `known` when `address` presented the fingerprint kept for it, `new` when
   * none was kept (it is kept now); throws a FingerprintMismatchError when
   * another one is kept.
   */
  check(address: string, fingerprint: string): 'known' | 'new' {
    const entries = this.read();
    const kept = entries.get(address);
    if (kept === fingerprint) return 'known';
    if (kept !== undefined) {
      throw new FingerprintMismatchError(
        `WARNING: tracker ${address} presented a different certificate (${fingerprint}) from the one it had when ` +
          `first seen (${kept}, kept in ${this.file}). Nothing was sent to it: someone may be posing as this ` +
          `tracker. If the tracker really has a new identity, remove its line from ${this.file} or pin the new ` +
          `fingerprint in the tracker info file.`,
        address,
        kept,
        fingerprint,
        'known',
      );
    }
    entries.set(address, fingerprint);
    this.write(entries);
    return 'new';
  }

  private read(): Map<string, string> {
    const entries = new Map<string, string>();
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return entries;
      throw err;
    }
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.replace(/#.*$/, '').trim();
      if (line === '') continue;
      const [address, written] = line.split(/\s+/);
      const fingerprint = written === undefined ? undefined : parseFingerprint(written);
      // a line that is not one is kept out of the map: it can pin nothing, and it is not silently trusted either
      if (address && fingerprint) entries.set(address, fingerprint);
    }
    return entries;
  }

  private write(entries: Map<string, string>): void {
    const text =
      '# trackers this client trusted on first use: IP:PORT and the fingerprint of its certificate\n' +
      [...entries].map(([address, fingerprint]) => `${address} ${fingerprint}\n`).join('');
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}

/**
 * The check a client makes of a tracker's certificate: against the pin of the
 * tracker info file when it has one, else against `known` (trusting and
 * keeping the first fingerprint seen). `onFirstUse` is told when a tracker was
 * trusted for the first time (the client says so, with the fingerprint).
 */
export function trackerVerifier(
  address: string,
  pinned: string | undefined,
  known: KnownTrackers | undefined,
  infoFile: string,
  onFirstUse?: (fingerprint: string) => void,
): (fingerprint: string) => void {
  return (fingerprint) => {
    if (pinned !== undefined) {
      if (fingerprint === pinned) return;
      throw new FingerprintMismatchError(
        `tracker ${address} presented certificate ${fingerprint}, but ${infoFile} pins ${pinned}. Nothing was sent ` +
          `to it: someone may be posing as this tracker. If the tracker really has a new identity, put its new ` +
          `fingerprint in ${infoFile}.`,
        address,
        pinned,
        fingerprint,
        'pinned',
      );
    }
    if (!known) return;
    if (known.check(address, fingerprint) === 'new') onFirstUse?.(fingerprint);
  };
}

/** The check a downloader makes of a seeder: the certificate its tracker listed for it, and no other. */
export function seederVerifier(peer: string, listed: string): (fingerprint: string) => void {
  return (fingerprint) => {
    if (fingerprint === listed) return;
    throw new FingerprintMismatchError(
      `seeder ${peer} presented certificate ${fingerprint}, not the ${listed} its tracker lists: not used`,
      peer,
      listed,
      fingerprint,
      'listed',
    );
  };
}
