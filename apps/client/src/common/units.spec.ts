import { etaMs, formatBytes, formatDuration, formatRate } from './units';

describe('client units', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [5 * 1024 ** 2, '5.0 MiB'],
    [200_000_000, '190.7 MiB'],
    [3 * 1024 ** 3, '3.0 GiB'],
    [2 * 1024 ** 4, '2.0 TiB'],
    [3 * 1024 ** 5, '3072.0 TiB'],
  ])('formatBytes(%d) is %s (binary prefixes, labelled as such)', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it.each([
    [0, '0 B/s'],
    [1536.4, '1.5 KiB/s'],
    [20.1 * 1024 ** 2, '20.1 MiB/s'],
  ])('formatRate(%d) is %s', (rate, text) => expect(formatRate(rate)).toBe(text));

  it.each([
    [0, '0.0 s'],
    [400, '0.4 s'],
    [1000, '1 s'],
    [12_001, '13 s'],
    [59_000, '59 s'],
    [60_000, '1m 0s'],
    [190_000, '3m 10s'],
    [3_600_000, '1h 0m'],
    [7_530_000, '2h 5m'],
  ])('formatDuration(%d) is %s', (ms, text) => expect(formatDuration(ms)).toBe(text));

  describe('etaMs', () => {
    it('is the bytes left over the current speed', () => {
      expect(etaMs(10 * 1024 ** 2, 2 * 1024 ** 2)).toBe(5_000);
      expect(etaMs(512, 1024)).toBe(500);
    });

    it('is 0 with nothing left, whatever the speed', () => {
      expect(etaMs(0, 0)).toBe(0);
    });

    it('cannot be told without a speed, or beyond a hundred days', () => {
      expect(etaMs(1024, 0)).toBeUndefined();
      expect(etaMs(1024, NaN)).toBeUndefined();
      expect(etaMs(1024 ** 4, 1)).toBeUndefined();
    });
  });
});
