import { parseHostPort } from './address';
import { parseTrackerInfo, TrackerInfoError } from './tracker-info';

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
