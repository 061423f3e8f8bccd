import { ConfigError, parseTrackerArgs } from '../config/tracker.config';

const files = () => (path: string) => {
  if (path === 'info.txt') return '127.0.0.1:7001\n127.0.0.1:7002\n';
  throw new Error('ENOENT');
};
const parse = (flags: string[], env: Record<string, string> = {}) =>
  parseTrackerArgs(['info.txt', '1', ...flags], files(), env);

describe('--http-port', () => {
  it('is off unless given', () => {
    expect(parse([]).httpPort).toBeUndefined();
  });

  it('comes from the flag, in either form, or from TRACKER_HTTP_PORT; the flag wins', () => {
    expect(parse(['--http-port', '9100']).httpPort).toBe(9100);
    expect(parse(['--http-port=0']).httpPort).toBe(0);
    expect(parse([], { TRACKER_HTTP_PORT: '9101' }).httpPort).toBe(9101);
    expect(parse(['--http-port', '9100'], { TRACKER_HTTP_PORT: '9101' }).httpPort).toBe(9100);
    expect(parse([], { TRACKER_HTTP_PORT: ' ' }).httpPort).toBeUndefined();
  });

  it.each([[['--http-port']], [['--http-port', 'x']], [['--http-port', '65536']], [['--http-port=-1']]])(
    'refuses %j with a clear error',
    (flags) => {
      expect(() => parse(flags)).toThrow(ConfigError);
      expect(() => parse(flags)).toThrow(/--http-port needs a port number 0-65535/);
    },
  );

  it('refuses a bad TRACKER_HTTP_PORT naming the variable', () => {
    expect(() => parse([], { TRACKER_HTTP_PORT: 'abc' })).toThrow(/TRACKER_HTTP_PORT needs a port number/);
  });
});
