import { TrackerInfoError } from '@app/protocol';
import { resolve } from 'node:path';
import { CLIENT_USAGE, ConfigError, parseClientArgs, parseDurationMs } from './client.config';

const files: Record<string, string> = { 'ti.txt': '127.0.0.1:7000\n127.0.0.1 7001\n', 'bad.txt': 'nonsense\n' };
const readFile = (path: string): string => {
  if (path in files) return files[path];
  throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
};

describe('parseClientArgs', () => {
  it('reads the address, the trackers and a default data directory', () => {
    expect(parseClientArgs(['127.0.0.1:7001', 'ti.txt'], {}, readFile)).toEqual({
      self: { host: '127.0.0.1', port: 7001 },
      trackerInfoFile: 'ti.txt',
      trackers: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
      ],
      dataDir: resolve('data/client-127.0.0.1-7001'),
      connectTimeoutMs: 2000,
    });
  });

  it('takes --data-dir', () => {
    expect(parseClientArgs(['[::1]:7001', 'ti.txt'], { dataDir: '/srv/c1' }, readFile).dataDir).toBe('/srv/c1');
    expect(parseClientArgs(['[::1]:7001', 'ti.txt'], {}, readFile).dataDir).toBe(resolve('data/client-__1-7001'));
  });

  it.each([
    [[], CLIENT_USAGE],
    [['127.0.0.1:7001'], CLIENT_USAGE],
    [['127.0.0.1:7001', 'ti.txt', 'extra'], CLIENT_USAGE],
    [['7001', 'ti.txt'], `'7001' is not an IP:PORT address; ${CLIENT_USAGE}`],
    [['127.0.0.1:70000', 'ti.txt'], `'127.0.0.1:70000' is not an IP:PORT address; ${CLIENT_USAGE}`],
    [['127.0.0.1:7001', 'missing.txt'], 'missing.txt: cannot read tracker info file (no such file)'],
  ])('rejects %j', (args, message) => {
    expect(() => parseClientArgs(args, {}, readFile)).toThrow(new ConfigError(message));
  });

  it('takes the chunk server limits, durations with or without a unit', () => {
    const config = parseClientArgs(
      ['127.0.0.1:7001', 'ti.txt'],
      {
        maxPeerConns: '100',
        maxPeerConnsPerIp: '4',
        peerRequestTimeout: '1500ms',
        peerLineTimeout: '2',
        peerIdleTimeout: '5m',
      },
      readFile,
    );
    expect(config.peerLimits).toEqual({
      maxConnections: 100,
      maxConnectionsPerAddress: 4,
      requestTimeoutMs: 1500,
      lineTimeoutMs: 2000,
      idleTimeoutMs: 300_000,
    });
    expect(parseClientArgs(['127.0.0.1:7001', 'ti.txt'], { peerIdleTimeout: '0' }, readFile).peerLimits).toEqual({
      idleTimeoutMs: 0,
    });
    expect(parseClientArgs(['127.0.0.1:7001', 'ti.txt'], {}, readFile).peerLimits).toBeUndefined();
  });

  it.each([
    [{ maxPeerConns: '0' }, '--max-peer-conns'],
    [{ maxPeerConnsPerIp: 'many' }, '--max-peer-conns-per-ip'],
    [{ maxPeerConnsPerIp: '2.5' }, '--max-peer-conns-per-ip'],
    [{ peerRequestTimeout: '5 minutes' }, '--peer-request-timeout'],
    [{ peerIdleTimeout: '-1s' }, '--peer-idle-timeout'],
    [{ peerLineTimeout: '' }, '--peer-line-timeout'],
  ])('rejects the limit %j, naming the flag', (options, flag) => {
    expect(() => parseClientArgs(['127.0.0.1:7001', 'ti.txt'], options, readFile)).toThrow(
      new RegExp(`^${flag} '.*' is not a `),
    );
  });

  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['7d', 604_800_000],
    ['45', 45_000],
    ['0.5', 500],
    ['0', 0],
  ])('reads the duration %s', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  describe('--capability-skew', () => {
    const skew = (text?: string) =>
      parseClientArgs(['127.0.0.1:7001', 'ti.txt'], { capabilitySkew: text }, readFile).capabilitySkewMs;

    it.each([
      ['0', 0],
      ['500ms', 500],
      ['30s', 30_000],
      ['5m', 300_000],
      ['2h', 7_200_000],
      ['90', 90_000],
    ])('reads %j as %d ms', (text, ms) => expect(skew(text)).toBe(ms));

    it('leaves the default to the seeder when not given', () => expect(skew()).toBeUndefined());

    it.each(['-1s', 'soon', '5x', ''])('rejects %j with one line', (text) => {
      expect(() => skew(text)).toThrow(
        new ConfigError(`--capability-skew '${text}' is not a duration such as 30s or 500ms; ${CLIENT_USAGE}`),
      );
    });
  });

  describe('--stall-timeout', () => {
    const stall = (text?: string) =>
      parseClientArgs(['127.0.0.1:7001', 'ti.txt'], { stallTimeout: text }, readFile).stallTimeoutMs;

    it.each([
      ['0', 0],
      ['30s', 30_000],
      ['10m', 600_000],
      ['1h', 3_600_000],
      ['90', 90_000],
    ])('reads %j as %d ms', (text, ms) => expect(stall(text)).toBe(ms));

    it('leaves the default (10 min) to the download when not given', () => expect(stall()).toBeUndefined());

    it.each(['-1s', 'never', '5x', ''])('rejects %j with one line', (text) => {
      expect(() => stall(text)).toThrow(
        new ConfigError(
          `--stall-timeout '${text}' is not a duration such as 30s or 10m (0: wait for ever); ${CLIENT_USAGE}`,
        ),
      );
    });
  });

  it('rejects an empty --data-dir', () => {
    expect(() => parseClientArgs(['127.0.0.1:7001', 'ti.txt'], { dataDir: ' ' }, readFile)).toThrow(ConfigError);
  });

  it('passes on a bad tracker info line, naming file and line', () => {
    expect(() => parseClientArgs(['127.0.0.1:7001', 'bad.txt'], {}, readFile)).toThrow(TrackerInfoError);
    expect(() => parseClientArgs(['127.0.0.1:7001', 'bad.txt'], {}, readFile)).toThrow(/^bad\.txt:1: /);
  });
});
