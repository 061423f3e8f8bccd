import { TrackerInfoError } from '@app/protocol';
import { resolve } from 'node:path';
import {
  CLIENT_USAGE,
  ConfigError,
  parseClientArgs,
  parseDurationMs,
  parseRateLimit,
  parseSwitch,
} from './client.config';

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
      trackerPins: [undefined, undefined],
      dataDir: resolve('data/client-127.0.0.1-7001'),
      connectTimeoutMs: 2000,
      partialSeeding: true,
      logLevel: 'off',
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

  describe('transfer settings: --upload-limit, --download-limit, --no-partial-seeding and their variables', () => {
    const parse = (options: object, env: Record<string, string | undefined> = {}) => {
      const c = parseClientArgs(['127.0.0.1:7001', 'ti.txt'], options, readFile, env);
      return { uploadLimit: c.uploadLimit, downloadLimit: c.downloadLimit, partialSeeding: c.partialSeeding };
    };
    const rates = 'a rate such as 500K, 5M or 1G per second (at least 1K), or 0, none or off for no limit';

    it('has no limits and partial seeding on by default', () => {
      expect(parse({})).toEqual({ uploadLimit: undefined, downloadLimit: undefined, partialSeeding: true });
    });

    it('reads the flags', () => {
      expect(parse({ uploadLimit: '5M', downloadLimit: '500K', partialSeeding: false })).toEqual({
        uploadLimit: 5 * 1024 ** 2,
        downloadLimit: 500 * 1024,
        partialSeeding: false,
      });
      expect(parse({ uploadLimit: '0', downloadLimit: 'none', partialSeeding: true })).toEqual({
        uploadLimit: undefined,
        downloadLimit: undefined,
        partialSeeding: true,
      });
    });

    it('reads P2P_UPLOAD_LIMIT, P2P_DOWNLOAD_LIMIT and P2P_PARTIAL_SEEDING', () => {
      expect(parse({}, { P2P_UPLOAD_LIMIT: '2M', P2P_DOWNLOAD_LIMIT: '64K', P2P_PARTIAL_SEEDING: 'off' })).toEqual({
        uploadLimit: 2 * 1024 ** 2,
        downloadLimit: 64 * 1024,
        partialSeeding: false,
      });
      expect(parse({}, { P2P_PARTIAL_SEEDING: 'ON' }).partialSeeding).toBe(true);
    });

    it('lets the flags win over the variables, even over bad ones', () => {
      const env = { P2P_UPLOAD_LIMIT: '2M', P2P_DOWNLOAD_LIMIT: 'junk', P2P_PARTIAL_SEEDING: 'off' };
      expect(parse({ uploadLimit: '1M', downloadLimit: 'off', partialSeeding: true }, env)).toEqual({
        uploadLimit: 1024 ** 2,
        downloadLimit: undefined,
        partialSeeding: true,
      });
      expect(parse({ partialSeeding: false }, { P2P_PARTIAL_SEEDING: 'on' }).partialSeeding).toBe(false);
    });

    it('takes an empty variable as unset', () => {
      expect(parse({}, { P2P_UPLOAD_LIMIT: '', P2P_DOWNLOAD_LIMIT: ' ', P2P_PARTIAL_SEEDING: '' })).toEqual({
        uploadLimit: undefined,
        downloadLimit: undefined,
        partialSeeding: true,
      });
    });

    it.each([
      [{ uploadLimit: 'fast' }, {}, `--upload-limit 'fast' is not ${rates}`],
      [{ uploadLimit: '100' }, {}, `--upload-limit '100' is not ${rates}`],
      [{ downloadLimit: '-1M' }, {}, `--download-limit '-1M' is not ${rates}`],
      [{}, { P2P_UPLOAD_LIMIT: '5X' }, `P2P_UPLOAD_LIMIT '5X' is not ${rates}`],
      [{}, { P2P_DOWNLOAD_LIMIT: 'lots' }, `P2P_DOWNLOAD_LIMIT 'lots' is not ${rates}`],
      [{}, { P2P_PARTIAL_SEEDING: 'no' }, `P2P_PARTIAL_SEEDING 'no' is not on or off`],
    ])('rejects %j with %j in one line naming where it came from', (options, env, message) => {
      expect(() => parse(options, env)).toThrow(new ConfigError(`${message}; ${CLIENT_USAGE}`));
    });

    it('names the new flags in the usage line', () => {
      expect(CLIENT_USAGE).toMatch(/\[--upload-limit RATE\] \[--download-limit RATE\] \[--no-partial-seeding\]/);
    });
  });

  it.each([
    ['5M', 5 * 1024 ** 2],
    ['500K', 500 * 1024],
    ['500kb/s', 500 * 1024],
    ['1.5G', 1.5 * 1024 ** 3],
    ['1024', 1024],
    ['0', 0],
    ['0.0', 0],
    ['none', 0],
    ['Off', 0],
    ['1023', undefined],
    ['0.5K', undefined],
    ['-1', undefined],
    ['5 M', undefined],
    ['', undefined],
    ['unlimited', undefined],
  ])('parseRateLimit(%j) is %j', (text, rate) => expect(parseRateLimit(text)).toBe(rate));

  it.each([
    ['on', true],
    ['OFF', false],
    [' off ', false],
    ['yes', undefined],
    ['', undefined],
  ])('parseSwitch(%j) is %j', (text, on) => expect(parseSwitch(text)).toBe(on));

  describe('--data-dir and --log-level with their variables', () => {
    const args = ['127.0.0.1:7001', 'ti.txt'];

    it('takes the data dir from P2P_DATA_DIR when the flag is not given, the flag winning', () => {
      expect(parseClientArgs(args, {}, readFile, { P2P_DATA_DIR: '/srv/env' }).dataDir).toBe('/srv/env');
      expect(parseClientArgs(args, { dataDir: '/srv/flag' }, readFile, { P2P_DATA_DIR: '/srv/env' }).dataDir).toBe(
        '/srv/flag',
      );
      expect(parseClientArgs(args, {}, readFile, { P2P_DATA_DIR: ' ' }).dataDir).toBe(
        resolve('data/client-127.0.0.1-7001'),
      );
    });

    it('takes the log level from the flag, else P2P_LOG_LEVEL, else off', () => {
      expect(parseClientArgs(args, {}, readFile).logLevel).toBe('off');
      expect(parseClientArgs(args, {}, readFile, { P2P_LOG_LEVEL: 'DEBUG' }).logLevel).toBe('debug');
      expect(parseClientArgs(args, { logLevel: 'warn' }, readFile, { P2P_LOG_LEVEL: 'debug' }).logLevel).toBe('warn');
    });

    it('speaks TLS to trackers unless --no-tls or P2P_NO_TLS says plain text', () => {
      expect(parseClientArgs(args, {}, readFile).noTls).toBeUndefined();
      expect(parseClientArgs(args, { tls: true }, readFile).noTls).toBeUndefined();
      expect(parseClientArgs(args, { tls: false }, readFile).noTls).toBe(true);
      expect(parseClientArgs(args, {}, readFile, { P2P_NO_TLS: '1' }).noTls).toBe(true);
      expect(parseClientArgs(args, {}, readFile, { P2P_NO_TLS: 'off' }).noTls).toBeUndefined();
      expect(parseClientArgs(args, {}, readFile, { P2P_NO_TLS: ' ' }).noTls).toBeUndefined();
      expect(() => parseClientArgs(args, {}, readFile, { P2P_NO_TLS: 'maybe' })).toThrow(
        /^P2P_NO_TLS 'maybe' is not 1 or 0/,
      );
    });

    it('rejects a bad log level, naming where it came from', () => {
      expect(() => parseClientArgs(args, { logLevel: 'loud' }, readFile)).toThrow(/^--log-level 'loud' is not one of/);
      expect(() => parseClientArgs(args, {}, readFile, { P2P_LOG_LEVEL: 'loud' })).toThrow(
        /^P2P_LOG_LEVEL 'loud' is not one of off, error, warn, info, debug, verbose/,
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
