import { parseBytes, parseDuration } from './units';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['7d', 604_800_000],
    ['12', 12_000],
    ['1.5', 1500],
    ['0', 0],
    [' 15s ', 15_000],
  ])('%j is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 's', '-1s', '5 m', '1w', '10x', '1e3', 'abc', '1.2.3s'])('refuses %j', (text) => {
    expect(() => parseDuration(text)).toThrow(RangeError);
  });
});

describe('parseBytes', () => {
  it.each([
    ['123', 123],
    ['64K', 65_536],
    ['16M', 16 * 1024 * 1024],
    ['1G', 1024 ** 3],
    ['2k', 2048],
    ['1.5M', 1.5 * 1024 * 1024],
    ['64KiB', 65_536],
    ['16MB', 16 * 1024 * 1024],
  ])('%j is %d bytes', (text, bytes) => expect(parseBytes(text)).toBe(bytes));

  it.each(['', 'K', '-1', '1T', '10X', '1e6'])('refuses %j', (text) => {
    expect(() => parseBytes(text)).toThrow(RangeError);
  });
});
