import { ConfigError, parseClientArgs } from '../config/client.config';

const readFile = () => '127.0.0.1:7001\n';
const parse = (metricsPort?: string, env: Record<string, string> = {}) =>
  parseClientArgs(['127.0.0.1:9001', 'info.txt'], metricsPort === undefined ? {} : { metricsPort }, readFile, env)
    .metricsPort;

describe('--metrics-port', () => {
  it('is off unless given; comes from the flag or P2P_METRICS_PORT, the flag winning', () => {
    expect(parse()).toBeUndefined();
    expect(parse('9200')).toBe(9200);
    expect(parse(undefined, { P2P_METRICS_PORT: '9201' })).toBe(9201);
    expect(parse('9200', { P2P_METRICS_PORT: '9201' })).toBe(9200);
    expect(parse(undefined, { P2P_METRICS_PORT: '' })).toBeUndefined();
  });

  it.each(['x', '65536', '-1', ''])('refuses %j naming the flag', (text) => {
    expect(() => parse(text)).toThrow(ConfigError);
    expect(() => parse(text)).toThrow(/--metrics-port '.*' is not a port number 0-65535/);
  });

  it('refuses a bad P2P_METRICS_PORT naming the variable', () => {
    expect(() => parse(undefined, { P2P_METRICS_PORT: 'abc' })).toThrow(/P2P_METRICS_PORT 'abc' is not a port/);
  });
});
