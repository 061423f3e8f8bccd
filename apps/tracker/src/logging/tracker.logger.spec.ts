import { Logger } from '@nestjs/common';
import { requestContext } from '../common/request-context';
import { logFormatFor, nestLogLevels, TrackerLogger } from './tracker.logger';

const ANSI = /\x1b\[/;

/** What `run` writes to stdout and stderr through the logger, line by line. */
function capture(run: () => void): { stdout: string[]; stderr: string[] } {
  const out = { stdout: '', stderr: '' };
  const spies = (['stdout', 'stderr'] as const).map((name) =>
    jest.spyOn(process[name], 'write').mockImplementation((chunk: string | Uint8Array) => {
      out[name] += String(chunk);
      return true;
    }),
  );
  try {
    run();
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  const lines = (text: string) => text.split('\n').filter((l) => l !== '');
  return { stdout: lines(out.stdout), stderr: lines(out.stderr) };
}

describe(TrackerLogger.name, () => {
  const json = new TrackerLogger('debug', { json: true, colors: false });

  it('writes one JSON object per line: time, level, context, message, then the fields', () => {
    const { stdout } = capture(() =>
      json.log({ message: 'alice logged in', user: 'alice', address: '10.0.0.5:51000' }, 'AuthController'),
    );
    expect(stdout).toHaveLength(1);
    const line = JSON.parse(stdout[0]) as Record<string, unknown>;
    expect(Object.keys(line)).toEqual(['time', 'level', 'context', 'message', 'user', 'address']);
    expect(line).toMatchObject({
      level: 'info',
      context: 'AuthController',
      message: 'alice logged in',
      user: 'alice',
      address: '10.0.0.5:51000',
    });
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
  });

  it('names each level as --log-level does, errors on stderr with their stack', () => {
    const { stdout, stderr } = capture(() => {
      json.warn('w', 'Ctx');
      json.debug('d', 'Ctx');
      json.error('e', 'Error: e\n    at somewhere', 'Ctx');
    });
    expect(stdout.map((l) => (JSON.parse(l) as { level: string }).level)).toEqual(['warn', 'debug']);
    expect(stderr).toHaveLength(1);
    expect(JSON.parse(stderr[0])).toMatchObject({ level: 'error', message: 'e', stack: 'Error: e\n    at somewhere' });
  });

  it('carries the request id of the async context, and none outside a request', () => {
    const { stdout } = capture(() => {
      requestContext.run({ requestId: 'r7', logId: 'r7' }, () => json.log('inside', 'Ctx'));
      json.log('outside', 'Ctx');
    });
    expect(JSON.parse(stdout[0])).toMatchObject({ message: 'inside', requestId: 'r7' });
    expect(JSON.parse(stdout[1])).not.toHaveProperty('requestId');
  });

  it('never writes a field that names a secret, whatever a caller passes', () => {
    const { stdout } = capture(() =>
      json.log({ message: 'm', user: 'bob', password: 'hunter2', sessionToken: 't0k', capability: 'c', mac: 'x' }),
    );
    expect(stdout[0]).not.toMatch(/hunter2|t0k|"capability"|"mac"/);
    expect(JSON.parse(stdout[0])).toMatchObject({ user: 'bob' });
  });

  it('keeps one line per event even for a message with a newline', () => {
    const { stdout } = capture(() => json.log('two\nlines', 'Ctx'));
    expect(stdout).toHaveLength(1);
    expect(JSON.parse(stdout[0])).toMatchObject({ message: 'two\nlines' });
  });

  it('writes no colour codes in JSON or uncoloured text, and colours text on a terminal', () => {
    const text = new TrackerLogger('info', { json: false, colors: false });
    const coloured = new TrackerLogger('info', { json: false, colors: true });
    const saved = process.env.NO_COLOR;
    delete process.env.NO_COLOR; // Nest's own colour helpers also look at it
    try {
      const plain = capture(() => {
        json.warn({ message: 'limit', limit: 'TOO_MANY_CONNECTIONS' }, 'Ctx');
        text.warn({ message: 'limit', limit: 'TOO_MANY_CONNECTIONS' }, 'Ctx');
      });
      expect(plain.stdout.join('\n')).not.toMatch(ANSI);
      expect(plain.stdout[1]).toMatch(/WARN \[Ctx\] limit limit=TOO_MANY_CONNECTIONS$/);
      expect(capture(() => coloured.warn('limit', 'Ctx')).stdout[0]).toMatch(ANSI);
    } finally {
      if (saved !== undefined) process.env.NO_COLOR = saved;
    }
  });

  it('shows the request id and quotes field values with spaces in text lines', () => {
    const text = new TrackerLogger('info', { json: false, colors: false });
    const { stdout } = capture(() =>
      requestContext.run({ requestId: '', logId: 'c3-1' }, () => text.log({ message: 'm', file: 'a b.txt' }, 'Ctx')),
    );
    expect(stdout[0]).toMatch(/\[Ctx\] m file="a b.txt" \[#c3-1\]$/);
  });

  it('drops the lines below its level (info hides debug), through the Nest Logger too', () => {
    const info = new TrackerLogger('info', { json: true, colors: false });
    Logger.overrideLogger(info);
    try {
      const { stdout } = capture(() => {
        new Logger('Ctx').debug('hidden');
        new Logger('Ctx').log('shown');
      });
      expect(stdout.map((l) => (JSON.parse(l) as { message: string }).message)).toEqual(['shown']);
    } finally {
      Logger.overrideLogger(false);
    }
  });
});

describe(nestLogLevels.name, () => {
  it.each([
    ['error', ['fatal', 'error']],
    ['warn', ['fatal', 'error', 'warn']],
    ['info', ['fatal', 'error', 'warn', 'log']],
    ['debug', ['fatal', 'error', 'warn', 'log', 'debug']],
  ] as const)('%s turns on %j', (level, nest) => {
    expect(nestLogLevels(level)).toEqual(nest);
  });
});

describe(logFormatFor.name, () => {
  it.each([
    [true, true, {}, { json: false, colors: true }],
    [true, true, { NO_COLOR: '1' }, { json: false, colors: false }],
    [false, true, {}, { json: true, colors: false }],
    [true, false, {}, { json: true, colors: false }],
    [false, false, {}, { json: true, colors: false }],
  ])('stdout tty %s, stderr tty %s, env %j: %j', (stdoutIsTTY, stderrIsTTY, env, format) => {
    expect(logFormatFor({ stdoutIsTTY, stderrIsTTY }, env)).toEqual(format);
  });

  it('takes --log-format over the terminal test; text off a terminal has no colour', () => {
    const tty = { stdoutIsTTY: true, stderrIsTTY: true };
    const pipe = { stdoutIsTTY: false, stderrIsTTY: false };
    expect(logFormatFor(tty, {}, 'json')).toEqual({ json: true, colors: false });
    expect(logFormatFor(pipe, {}, 'text')).toEqual({ json: false, colors: false });
    expect(logFormatFor(tty, {}, 'text')).toEqual({ json: false, colors: true });
  });
});
