import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FingerprintMismatchError } from './errors';
import { KnownTrackers, seederVerifier, trackerVerifier } from './known-trackers';

const fp = (byte: string) => `sha256:${byte.repeat(32)}`;

describe(KnownTrackers.name, () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'known-'));
    file = join(dir, 'known_trackers');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the first fingerprint of each address (0600), accepts it again and refuses another, loudly', () => {
    const known = new KnownTrackers(file);
    expect(known.check('127.0.0.1:6001', fp('aa'))).toBe('new');
    expect(known.check('127.0.0.1:6002', fp('bb'))).toBe('new');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(new KnownTrackers(file).check('127.0.0.1:6001', fp('aa'))).toBe('known');
    const err = (() => {
      try {
        known.check('127.0.0.1:6001', fp('cc'));
      } catch (e) {
        return e as FingerprintMismatchError;
      }
    })();
    expect(err).toBeInstanceOf(FingerprintMismatchError);
    expect(err!.message).toMatch(/^WARNING: tracker 127\.0\.0\.1:6001 presented a different certificate/);
    expect(err!.message).toContain(fp('aa'));
    expect(err!.message).toContain(fp('cc'));
    expect(err!.message).toContain(`remove its line from ${file}`);
    // the refused one is not kept
    expect(known.get('127.0.0.1:6001')).toBe(fp('aa'));
  });

  it('takes a line removed by hand into account at once', () => {
    const known = new KnownTrackers(file);
    known.check('127.0.0.1:6001', fp('aa'));
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^127.*$/m, ''));
    expect(known.check('127.0.0.1:6001', fp('cc'))).toBe('new');
  });

  it('checks a pin first, never writing it down, and trusts on first use otherwise', () => {
    const known = new KnownTrackers(file);
    const firstUse: string[] = [];
    trackerVerifier('h:1', fp('aa'), known, 'tracker_info.txt')(fp('aa'));
    expect(() => trackerVerifier('h:1', fp('aa'), known, 'tracker_info.txt')(fp('bb'))).toThrow(
      /tracker h:1 presented certificate .* but tracker_info\.txt pins/,
    );
    expect(known.get('h:1')).toBeUndefined();
    trackerVerifier('h:2', undefined, known, 't', (f) => firstUse.push(f))(fp('bb'));
    trackerVerifier('h:2', undefined, known, 't', (f) => firstUse.push(f))(fp('bb'));
    expect(firstUse).toEqual([fp('bb')]);
    expect(() => seederVerifier('alice at h:3', fp('aa'))(fp('bb'))).toThrow(/seeder alice at h:3 presented/);
  });
});
