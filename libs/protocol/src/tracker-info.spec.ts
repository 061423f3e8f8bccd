import { parseHostPort } from './address';
import { parseTrackerInfo, parseTrackerInfoEntries, TrackerInfoError } from './tracker-info';
import { parseFingerprint } from './tls';

describe('parseTrackerInfo', () => {
  it('reads IP:PORT and IP PORT lines, skipping blanks and comments', () => {
    const text = '# trackers\n127.0.0.1:7000\n\n  127.0.0.1 7001  # second\r\n[::1]:7002\n';
    expect(parseTrackerInfo(text, 't.txt')).toEqual([
      { host: '127.0.0.1', port: 7000 },
      { host: '127.0.0.1', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
  });

  it.each([
    ['127.0.0.1:7000\nnonsense\n', 't.txt:2'],
    ['127.0.0.1:70000\n', 't.txt:1'],
    ['127.0.0.1:0\n', 't.txt:1'],
    ['300.0.0.1:7000\n', 't.txt:1'],
    ['127.0.0.1:7000\n127.0.0.1 7000\n', 't.txt:2'],
    ['# nothing\n\n', 't.txt'],
  ])('rejects %j naming %s', (text, where) => {
    expect(() => parseTrackerInfo(text, 't.txt')).toThrow(TrackerInfoError);
    expect(() => parseTrackerInfo(text, 't.txt')).toThrow(new RegExp(`^${where.replace('.', '\\.')}`));
  });
});

describe('parseTrackerInfoEntries', () => {
  const hex = '0a'.repeat(32);
  it('reads a pinned fingerprint after the address, in either form and case, and none where none is given', () => {
    const colons = hex.toUpperCase().match(/../g)!.join(':');
    const text = `127.0.0.1:7000 sha256:${hex}\n127.0.0.1 7001 SHA256:${colons}\n127.0.0.1:7002\n`;
    expect(parseTrackerInfoEntries(text, 't.txt')).toEqual([
      { address: { host: '127.0.0.1', port: 7000 }, fingerprint: `sha256:${hex}` },
      { address: { host: '127.0.0.1', port: 7001 }, fingerprint: `sha256:${hex}` },
      { address: { host: '127.0.0.1', port: 7002 } },
    ]);
    expect(parseTrackerInfo(text, 't.txt')).toEqual([
      { host: '127.0.0.1', port: 7000 },
      { host: '127.0.0.1', port: 7001 },
      { host: '127.0.0.1', port: 7002 },
    ]);
  });

  it.each([`sha256:${hex.slice(2)}`, `sha256:${hex}00`, 'sha256:', `sha256:${'zz'.repeat(32)}`])(
    'refuses the fingerprint %s, naming the line',
    (fp) => {
      expect(() => parseTrackerInfoEntries(`127.0.0.1:7000\n127.0.0.1:7001 ${fp}\n`, 't.txt')).toThrow(
        /^t\.txt:2: .* is not a certificate fingerprint/,
      );
    },
  );

  it('parses fingerprints strictly', () => {
    expect(parseFingerprint(`sha256:${hex}`)).toBe(`sha256:${hex}`);
    expect(parseFingerprint(hex)).toBeUndefined();
    expect(parseFingerprint(`md5:${hex}`)).toBeUndefined();
    expect(parseFingerprint(`sha256:${hex}:`)).toBeUndefined();
  });
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:7001', { host: '127.0.0.1', port: 7001 }],
    ['localhost:80', { host: 'localhost', port: 80 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
  ])('%s', (text, want) => expect(parseHostPort(text)).toEqual(want));

  it.each(['7001', '127.0.0.1', '127.0.0.1:', '127.0.0.1:abc', '1.2.3:80', ':80', '127.0.0.1:65536'])(
    'rejects %j',
    (text) => expect(parseHostPort(text)).toBeUndefined(),
  );
});
