import { encodeOp, quoteArg, TrackerInfoError } from '@app/protocol';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stampedOp } from '../testing/factories';
import {
  ConfigError,
  DEFAULT_TRACKER_LIMITS,
  infoRequest,
  longestOpLineBytes,
  MAX_SYNC_LINE_BYTES,
  parseTrackerArgs,
  SYNC_LINE_OVERHEAD_BYTES,
  TRACKER_USAGE,
} from './tracker.config';

const INFO = '127.0.0.1:7001\n127.0.0.1:7002\n# spare\n10.0.0.5 7003\n';

/** A readFile that knows one file, `info.txt`. */
function files(text = INFO): (path: string) => string {
  return (path) => {
    if (path === 'info.txt') return text;
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
  };
}

/** The error `parseTrackerArgs` throws for `argv`; fails if it does not throw. */
function failure(argv: string[], readFile = files()): Error {
  try {
    parseTrackerArgs(argv, readFile);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be refused`);
}

describe(parseTrackerArgs.name, () => {
  it('reads the tracker list and picks this tracker by its 1-based number', () => {
    const config = parseTrackerArgs(['info.txt', '2'], files());
    expect(config).toEqual({
      trackerNumber: 2,
      trackers: [
        { host: '127.0.0.1', port: 7001 },
        { host: '127.0.0.1', port: 7002 },
        { host: '10.0.0.5', port: 7003 },
      ],
      trackerPins: [undefined, undefined, undefined],
      self: { host: '127.0.0.1', port: 7002 },
      dataDir: resolve('data/tracker-2'),
      peerAddresses: new Map(),
      keyFile: resolve('info.key'),
      limits: DEFAULT_TRACKER_LIMITS,
      sessionIdleMs: 3_600_000,
      sessionMaxAgeMs: 7 * 86_400_000,
      capabilityTtlMs: 60 * 60 * 1000,
      logLevel: 'info',
    });
  });

  describe('--compact-after and --compact-offline-after', () => {
    const parse = (...flags: string[]) => parseTrackerArgs(['info.txt', '1', ...flags], files());

    it('leaves both unset by default: the tracker defaults apply, and an offline tracker holds compaction back', () => {
      const config = parse();
      expect(config.compactAfterOps).toBeUndefined();
      expect(config.compactOfflineAfterMs).toBeUndefined();
    });

    it('reads a number of changes (0: never) and a duration', () => {
      expect(parse('--compact-after', '0').compactAfterOps).toBe(0);
      expect(parse('--compact-after', '1000').compactAfterOps).toBe(1000);
      expect(parse('--compact-offline-after', '2h').compactOfflineAfterMs).toBe(7_200_000);
    });

    it.each([[['--compact-after', '-1']], [['--compact-after', 'lots']], [['--compact-after']]])(
      'refuses %j',
      (flags) => expect(() => parse(...flags)).toThrow(/^--compact-after needs a number of changes/),
    );

    it.each([[['--compact-offline-after', '0']], [['--compact-offline-after', 'soon']], [['--compact-offline-after']]])(
      'refuses %j',
      (flags) => expect(() => parse(...flags)).toThrow(/^--compact-offline-after needs a duration/),
    );
  });

  describe('--require-tls and --print-fingerprint', () => {
    const parse = (argv: string[], env: Record<string, string> = {}) =>
      parseTrackerArgs(['info.txt', '1', ...argv], files(), env);

    it('are off by default and absent from the config', () => {
      const config = parse([]);
      expect(config.requireTls).toBeUndefined();
      expect(config.printFingerprint).toBeUndefined();
    });

    it('turn on with their flags', () => {
      expect(parse(['--require-tls']).requireTls).toBe(true);
      expect(parse(['--print-fingerprint']).printFingerprint).toBe(true);
    });

    it.each([
      ['1', true],
      ['true', true],
      ['YES', true],
      ['0', undefined],
      ['false', undefined],
      ['', undefined],
    ])('reads TRACKER_REQUIRE_TLS=%s', (text, expected) => {
      expect(parse([], { TRACKER_REQUIRE_TLS: text }).requireTls).toBe(expected);
    });

    it('lets the flag win over TRACKER_REQUIRE_TLS=0, and refuses a value it cannot read', () => {
      expect(parse(['--require-tls'], { TRACKER_REQUIRE_TLS: '0' }).requireTls).toBe(true);
      expect(() => parse([], { TRACKER_REQUIRE_TLS: 'maybe' })).toThrow(
        new ConfigError("TRACKER_REQUIRE_TLS must be 1, true or yes (or 0, false, no), not 'maybe'"),
      );
    });
  });

  describe('--capability-ttl', () => {
    it.each([
      ['500ms', 500],
      ['30s', 30_000],
      ['5m', 300_000],
      ['2h', 7_200_000],
      ['7d', 604_800_000],
      ['3', 3_000],
      ['1.5', 1_500],
    ])('reads %j as %d ms', (text, ms) => {
      expect(parseTrackerArgs(['info.txt', '1', '--capability-ttl', text], files()).capabilityTtlMs).toBe(ms);
    });

    it.each([['0'], ['-5s'], ['5x'], ['soon'], ['']])('refuses %j with one line', (text) => {
      expect(() => parseTrackerArgs(['info.txt', '1', '--capability-ttl', text], files())).toThrow(
        /^--capability-ttl needs a duration such as 30s, 5m or 2h; usage: tracker/,
      );
    });

    it('refuses a missing value', () => {
      expect(() => parseTrackerArgs(['info.txt', '1', '--capability-ttl'], files())).toThrow(/--capability-ttl needs/);
    });
  });

  describe('limits', () => {
    it('sets each limit from its flag, as two words or with =', () => {
      const argv = ['info.txt', '1', '--max-conns-per-ip', '8', '--max-conns=500', '--idle-timeout-login', '500ms'];
      argv.push(
        '--idle-timeout',
        '2h',
        '--max-line',
        '128K',
        '--max-buffered=1M',
        '--max-pending',
        '1G',
        '--max-upload-line',
        '8M',
      );
      argv.push('--max-scrypt', '4', '--max-scrypt-queue', '0', '--max-scrypt-per-ip', '3');
      argv.push('--login-backoff-after', '1000000');
      argv.push('--login-backoff-max', '30');
      expect(parseTrackerArgs(argv, files()).limits).toEqual({
        maxConnsPerIp: 8,
        maxConns: 500,
        idleTimeoutLoginMs: 500,
        idleTimeoutMs: 7_200_000,
        maxLineBytes: 128 * 1024,
        maxBufferedBytes: 1024 * 1024,
        maxPendingBytes: 1024 ** 3,
        maxUploadLineBytes: 8 * 1024 * 1024,
        maxScrypt: 4,
        maxScryptQueue: 0,
        maxScryptPerIp: 3,
        loginBackoffAfter: 1_000_000,
        loginBackoffMaxMs: 30_000,
      });
    });

    it.each([
      [['--max-conns', 'many'], /^--max-conns: 'many' is not a whole number/],
      [['--max-conns-per-ip', '0'], /^--max-conns-per-ip must be at least 1$/],
      [['--idle-timeout', '5 min'], /^--idle-timeout: '5 min' is not a duration/],
      [['--max-line', '10'], /^--max-line must be at least 1024$/],
      [['--max-buffered'], /^--max-buffered: '' is not a size/],
    ])('refuses %j', (flags, message) => {
      const err = failure(['info.txt', '1', ...flags]);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toMatch(message);
    });

    describe('an upload_file always replicates: its op fits a line between trackers', () => {
      it('holds for the defaults, and for the largest --max-upload-line allowed', () => {
        expect(longestOpLineBytes(DEFAULT_TRACKER_LIMITS)).toBeLessThanOrEqual(MAX_SYNC_LINE_BYTES);
        const largest = MAX_SYNC_LINE_BYTES - SYNC_LINE_OVERHEAD_BYTES - DEFAULT_TRACKER_LIMITS.maxLineBytes;
        const limits = parseTrackerArgs(['info.txt', '1', '--max-upload-line', String(largest)], files()).limits;
        expect(limits.maxUploadLineBytes).toBe(largest);
      });

      it.each([
        [['--max-upload-line', '256M']],
        [['--max-upload-line', String(MAX_SYNC_LINE_BYTES - SYNC_LINE_OVERHEAD_BYTES - 64 * 1024 + 1)]],
        [['--max-buffered', '256M']],
        [['--max-line', '200M']],
      ])('refuses %j', (flags) => {
        const err = failure(['info.txt', '1', ...flags]);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err.message).toMatch(/could not replicate to the other trackers/);
      });

      it('an op adds less than the allowance to the command line it came from, even with a path full of quotes', () => {
        const hashes = Array.from({ length: 1000 }, (_, i) => i.toString(16).padStart(40, '0')).join(',');
        const path = `/a/${'"\\ '.repeat(10_000)}f.bin`;
        const command = `upload_file team ${quoteArg(path)} ${1000 * 524_288} ${'f'.repeat(40)} ${hashes} 7001`;
        const op = stampedOp({
          kind: 'upload_file',
          actor: 'a'.repeat(64),
          requestId: 'r'.repeat(64),
          origin: 9999,
          seq: Number.MAX_SAFE_INTEGER,
          lamport: Number.MAX_SAFE_INTEGER,
          time: Number.MAX_SAFE_INTEGER,
          groupId: 'g'.repeat(32),
          filePath: path,
          fileSize: 1000 * 524_288,
          fileHash: 'f'.repeat(40),
          chunkHashList: hashes,
        });
        const line = `123456789 ${encodeOp(op)}`;
        expect(line.length - command.length).toBeLessThan(SYNC_LINE_OVERHEAD_BYTES);
        // longestOpLineBytes allows a whole head (--max-line) on top of that
        expect(line.length - hashes.length).toBeLessThan(
          DEFAULT_TRACKER_LIMITS.maxLineBytes + SYNC_LINE_OVERHEAD_BYTES,
        );
      });
    });
  });

  describe('--session-idle and --session-max-age', () => {
    it.each([
      ['30s', 30_000],
      ['5m', 300_000],
      ['2h', 7_200_000],
      ['7d', 604_800_000],
      ['45', 45_000],
      ['1500ms', 1500],
    ])('reads the duration %j as %d ms', (text, ms) => {
      const config = parseTrackerArgs(['info.txt', '1', '--session-idle', text, '--session-max-age', text], files());
      expect(config.sessionIdleMs).toBe(ms);
      expect(config.sessionMaxAgeMs).toBe(ms);
    });

    it.each([undefined, '', '0', '500ms', '1w', '-5s', '3.5h', '4000d'])(
      'refuses %j (missing, malformed, under 1 s or over 10 years)',
      (text) => {
        const err = failure(['info.txt', '1', '--session-idle', ...(text === undefined ? [] : [text])]);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err.message).toMatch(/^--session-idle needs a duration of 1s to 10 years, such as 30s/);
      },
    );
  });

  describe('--key-file', () => {
    it.each([
      ['info.txt', 'info.key'],
      ['conf/tracker_info.txt', 'conf/tracker_info.key'],
      ['trackers', 'trackers.key'],
      ['a.txt.txt', 'a.txt.key'],
    ])('defaults to the info file %j with .key for .txt: %j, as an absolute path', (infoFile, keyFile) => {
      const readFile = (path: string) => (path === infoFile ? INFO : files()(path));
      expect(parseTrackerArgs([infoFile, '1'], readFile).keyFile).toBe(resolve(keyFile));
    });

    it.each([
      [['--key-file', '/etc/p2p/net.key', 'info.txt', '1']],
      [['info.txt', '1', '--key-file', '/etc/p2p/net.key']],
    ])('takes the file given anywhere: %j', (argv) => {
      expect(parseTrackerArgs(argv, files()).keyFile).toBe('/etc/p2p/net.key');
    });

    it('resolves a relative key file to an absolute path', () => {
      expect(parseTrackerArgs(['info.txt', '1', '--key-file', 'k/net.key'], files()).keyFile).toBe(
        resolve('k/net.key'),
      );
    });

    it.each([[['info.txt', '1', '--key-file']], [['info.txt', '1', '--key-file', '']]])(
      'refuses %j (no value) naming the option',
      (argv) => {
        const err = failure(argv);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err.message).toBe(`--key-file needs a value; ${TRACKER_USAGE}`);
      },
    );
  });

  describe('--peer-address', () => {
    it('maps other trackers to the address to sync with, leaving the rest to the file', () => {
      const config = parseTrackerArgs(
        ['info.txt', '2', '--peer-address', '1=10.1.1.1:8001', '--peer-address', '3=10.1.1.3:8003'],
        files(),
      );
      expect(config.peerAddresses).toEqual(
        new Map([
          [1, { host: '10.1.1.1', port: 8001 }],
          [3, { host: '10.1.1.3', port: 8003 }],
        ]),
      );
      // where this tracker listens still comes from the file
      expect(config.self).toEqual({ host: '127.0.0.1', port: 7002 });
      expect(config.trackers[0]).toEqual({ host: '127.0.0.1', port: 7001 });
    });

    it('keeps the last address given for the same tracker', () => {
      const config = parseTrackerArgs(
        ['info.txt', '1', '--peer-address', '2=10.0.0.1:1', '--peer-address', '2=10.0.0.2:2'],
        files(),
      );
      expect(config.peerAddresses).toEqual(new Map([[2, { host: '10.0.0.2', port: 2 }]]));
    });

    it.each([
      '1=10.0.0.1:8001',
      '0=10.0.0.1:8001',
      '4=10.0.0.1:8001',
      '2=nowhere',
      '2:10.0.0.1:8001',
      '=10.0.0.1:1',
      'x=1.2.3.4:5',
    ])('refuses %j on tracker 1 (itself, out of range or not N=IP:PORT)', (value) => {
      const err = failure(['info.txt', '1', '--peer-address', value]);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(`--peer-address '${value}' must be N=IP:PORT for another tracker N of the file`);
    });

    it('refuses --peer-address without a value', () => {
      const err = failure(['info.txt', '1', '--peer-address']);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(`--peer-address needs a value; ${TRACKER_USAGE}`);
    });
  });

  it('accepts the first and the last tracker', () => {
    expect(parseTrackerArgs(['info.txt', '1'], files()).self).toEqual({ host: '127.0.0.1', port: 7001 });
    expect(parseTrackerArgs(['info.txt', '3'], files()).self).toEqual({ host: '10.0.0.5', port: 7003 });
  });

  it.each([
    [['--data-dir', '/var/lib/t1', 'info.txt', '1']],
    [['info.txt', '--data-dir', '/var/lib/t1', '1']],
    [['info.txt', '1', '--data-dir', '/var/lib/t1']],
    [['info.txt', '1', '--data-dir=/var/lib/t1']],
    [['--data-dir=/var/lib/t1', 'info.txt', '1']],
  ])('takes --data-dir in either form and anywhere: %j', (argv) => {
    const config = parseTrackerArgs(argv, files());
    expect(config.dataDir).toBe('/var/lib/t1');
    expect(config.trackerNumber).toBe(1);
  });

  it('resolves a relative --data-dir to an absolute path', () => {
    expect(parseTrackerArgs(['info.txt', '1', '--data-dir', 'rel/dir'], files()).dataDir).toBe(resolve('rel/dir'));
  });

  it('reads the file it is given from disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tracker-config-'));
    try {
      const file = join(dir, 'tracker_info.txt');
      writeFileSync(file, '127.0.0.1:9000\n');
      const config = parseTrackerArgs([file, '1'], (p) => readFileSync(p, 'utf8'));
      expect(config.self).toEqual({ host: '127.0.0.1', port: 9000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([[[]], [['info.txt']], [['info.txt', '1', '2']], [['--data-dir', '/d']]])(
    'refuses %j (wrong number of arguments) with the usage',
    (argv) => {
      const err = failure(argv);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(TRACKER_USAGE);
    },
  );

  it.each(['--verbose', '-v', '--data', '--data-dir-x=/d'])('refuses the unknown option %s, naming it', (option) => {
    const err = failure(['info.txt', '1', option]);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`unknown option ${option}; ${TRACKER_USAGE}`);
  });

  it('refuses --data-dir without a value', () => {
    const err = failure(['info.txt', '1', '--data-dir']);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^--data-dir needs a directory; usage: /);
  });

  it('refuses an empty --data-dir value', () => {
    const err = failure(['info.txt', '1', '--data-dir', '']);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^--data-dir needs a directory; usage: /);
  });

  it('refuses an empty --data-dir= like the two-word form, rather than using the current directory', () => {
    const parse = () => parseTrackerArgs(['info.txt', '1', '--data-dir='], files());
    expect(parse).toThrow(ConfigError);
    expect(parse).toThrow(/^--data-dir needs a directory; usage: /);
  });

  it('names a missing file and says it does not exist', () => {
    const err = failure(['missing.txt', '1']);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe('missing.txt: cannot read tracker info file (no such file)');
  });

  it('names a missing file on disk', () => {
    const path = join(tmpdir(), 'no-such-dir-for-tracker-spec', 'tracker_info.txt');
    const err = failure([path, '1'], (p) => readFileSync(p, 'utf8'));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`${path}: cannot read tracker info file (no such file)`);
  });

  it('gives the reason when a file cannot be read for another reason', () => {
    const err = failure(['info.txt', '1'], () => {
      throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    });
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe('info.txt: cannot read tracker info file (EACCES: permission denied)');
  });

  it.each([
    ['0', 'zero'],
    ['4', 'one past the last tracker'],
    ['99999', 'far too big'],
    ['abc', 'not a number'],
    ['1.5', 'not a whole number'],
    ['', 'empty'],
    [' 1', 'padded'],
    ['0x1', 'hexadecimal'],
  ])('refuses tracker number %j (%s), saying which numbers are valid', (n) => {
    const err = failure(['info.txt', n]);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`info.txt: tracker number '${n}' is out of range (the file lists 3 trackers: use 1-3)`);
  });

  it('uses the singular for a file listing one tracker', () => {
    expect(failure(['info.txt', '2'], files('127.0.0.1:7001\n')).message).toBe(
      "info.txt: tracker number '2' is out of range (the file lists 1 tracker: use 1-1)",
    );
  });

  it.each([
    ['127.0.0.1:7001\nnot-an-address\n', /^info\.txt:2: /],
    ['127.0.0.1:70000\n', /^info\.txt:1: /],
    ['127.0.0.1:7001\n127.0.0.1:7001\n', /^info\.txt:2: .*listed twice/],
    ['# only comments\n\n', /^info\.txt: lists no tracker$/],
  ])('refuses a bad tracker info file %j with a TrackerInfoError naming the line', (text, message) => {
    const err = failure(['info.txt', '1'], files(text));
    expect(err).toBeInstanceOf(TrackerInfoError);
    expect(err.message).toMatch(message);
  });

  it('puts every refusal on one line', () => {
    const cases: [string[], ((p: string) => string)?][] = [
      [[]],
      [['info.txt', '1', '--nope']],
      [['info.txt', '1', '--data-dir']],
      [['info.txt', '1', '--key-file']],
      [['info.txt', '1', '--peer-address', '1=1.2.3.4:5']],
      [['missing.txt', '1']],
      [['info.txt', '9']],
      [['info.txt', '1'], files('garbage\n')],
    ];
    for (const [argv, readFile] of cases) expect(failure(argv, readFile).message).not.toMatch(/\n/);
  });

  describe('--log-level and the environment', () => {
    const parse = (flags: string[], env: NodeJS.ProcessEnv = {}) =>
      parseTrackerArgs(['info.txt', '1', ...flags], files(), env);

    it.each(['error', 'warn', 'info', 'debug'] as const)('takes --log-level %s, in both spellings', (level) => {
      expect(parse(['--log-level', level]).logLevel).toBe(level);
      expect(parse([`--log-level=${level}`]).logLevel).toBe(level);
    });

    it('refuses a level it does not know, and a missing one, naming the choices', () => {
      expect(failure(['info.txt', '1', '--log-level', 'loud'])).toBeInstanceOf(ConfigError);
      expect(failure(['info.txt', '1', '--log-level', 'loud']).message).toMatch(
        /^--log-level needs one of error, warn, info, debug/,
      );
      expect(failure(['info.txt', '1', '--log-level']).message).toMatch(/^--log-level needs/);
    });

    it('reads TRACKER_LOG_LEVEL, keeps TRACKER_LOG=debug as an alias, and lets the flag win', () => {
      expect(parse([], { TRACKER_LOG_LEVEL: 'warn' }).logLevel).toBe('warn');
      expect(parse([], { TRACKER_LOG: 'debug' }).logLevel).toBe('debug');
      expect(parse([], { TRACKER_LOG: 'debug', TRACKER_LOG_LEVEL: 'error' }).logLevel).toBe('error');
      expect(parse(['--log-level', 'debug'], { TRACKER_LOG_LEVEL: 'error' }).logLevel).toBe('debug');
      expect(parse(['--log-level', 'warn'], { TRACKER_LOG_LEVEL: 'nonsense' }).logLevel).toBe('warn');
      expect(() => parse([], { TRACKER_LOG_LEVEL: 'nonsense' })).toThrow(/^TRACKER_LOG_LEVEL must be one of/);
    });

    it('takes --log-format json|text or TRACKER_LOG_FORMAT, the flag winning, and refuses others', () => {
      expect(parse([]).logFormat).toBeUndefined();
      expect(parse(['--log-format', 'text']).logFormat).toBe('text');
      expect(parse(['--log-format=json'], { TRACKER_LOG_FORMAT: 'text' }).logFormat).toBe('json');
      expect(parse([], { TRACKER_LOG_FORMAT: 'text' }).logFormat).toBe('text');
      expect(() => parse(['--log-format', 'xml'])).toThrow(/^--log-format needs json or text/);
      expect(() => parse([], { TRACKER_LOG_FORMAT: 'xml' })).toThrow(/^TRACKER_LOG_FORMAT must be json or text/);
    });

    it('takes the data dir and key file from TRACKER_DATA_DIR and TRACKER_KEY_FILE, the flags winning', () => {
      const env = { TRACKER_DATA_DIR: '/srv/t1', TRACKER_KEY_FILE: '/etc/p2p/net.key' };
      expect(parse([], env)).toMatchObject({ dataDir: '/srv/t1', keyFile: '/etc/p2p/net.key' });
      expect(parse(['--data-dir', '/tmp/d', '--key-file', '/tmp/k'], env)).toMatchObject({
        dataDir: '/tmp/d',
        keyFile: '/tmp/k',
      });
      expect(parse([], { TRACKER_DATA_DIR: '' }).dataDir).toBe(resolve('data/tracker-1'));
    });
  });
});

describe(infoRequest.name, () => {
  it.each([
    [['--help'], 'help'],
    [['-h'], 'help'],
    [['info.txt', '1', '--version'], 'version'],
    [['-V'], 'version'],
    [['--version', '--help'], 'version'],
    [['info.txt', '1'], undefined],
    [['info.txt', '1', '--helpful'], undefined],
  ])('%j asks for %s', (argv, wanted) => {
    expect(infoRequest(argv)).toBe(wanted);
  });
});
