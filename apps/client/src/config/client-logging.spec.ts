import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientLogger, clientVersion, StderrLogger } from './client-logging';

describe('clientLogger', () => {
  it('is off by default and for off', () => {
    expect(clientLogger([], {})).toBe(false);
    expect(clientLogger(['--log-level', 'off'], { P2P_LOG_LEVEL: 'debug' })).toBe(false);
  });

  it('takes --log-level (either form) over P2P_LOG_LEVEL', () => {
    expect(clientLogger(['a', 'b', '--log-level=warn'], {})).toBeInstanceOf(StderrLogger);
    expect(clientLogger([], { P2P_LOG_LEVEL: 'info' })).toBeInstanceOf(StderrLogger);
    expect(clientLogger(['--log-level', 'off'], { P2P_LOG_LEVEL: 'info' })).toBe(false);
  });

  it('leaves a bad level to the config, which reports it as a usage error', () => {
    expect(clientLogger(['--log-level', 'loud'], {})).toBe(false);
  });

  it('writes every line on stderr, none on stdout', () => {
    const logger = clientLogger(['--log-level', 'info'], {}) as StderrLogger;
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      logger.log('hello', 'Test');
      logger.debug('hidden', 'Test');
      expect(out).not.toHaveBeenCalled();
      expect(err).toHaveBeenCalledTimes(1);
      expect(String(err.mock.calls[0][0])).toMatch(/\[Test\] hello/);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});

describe('clientVersion', () => {
  it('reads the version of the nearest package.json above', () => {
    const root = mkdtempSync(join(tmpdir(), 'client-version-'));
    try {
      writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'x', version: '9.8.7' }));
      mkdirSync(join(root, 'dist', 'src'), { recursive: true });
      expect(clientVersion(join(root, 'dist', 'src'))).toBe('9.8.7');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
