import { SpeedMeter } from './speed-meter';

describe(SpeedMeter.name, () => {
  it('averages from the start and measures the current speed over its window', () => {
    const m = new SpeedMeter(0, 3_000);
    expect(m.current(0)).toBe(0);
    // 1 MB/s for 5 s, then 4 MB/s for 3 s
    for (let t = 1; t <= 5; t++) m.record(t * 1e6, t * 1000);
    expect(m.current(5_000)).toBeCloseTo(1e6);
    for (let t = 6; t <= 8; t++) m.record(5e6 + (t - 5) * 4e6, t * 1000);
    expect(m.current(8_000)).toBeCloseTo(4e6);
    expect(m.average(8_000)).toBeCloseTo(17e6 / 8);
  });

  it('falls to zero when nothing arrives for a whole window', () => {
    const m = new SpeedMeter(0, 3_000);
    m.record(1e6, 1_000);
    expect(m.current(1_500)).toBeCloseTo(1e6 / 1.5);
    expect(m.current(10_000)).toBe(0);
  });

  it('merges samples that come faster than every 100 ms but counts their bytes', () => {
    const m = new SpeedMeter(0, 3_000);
    for (let i = 1; i <= 1000; i++) m.record(i * 1000, i);
    expect(m.current(1_000)).toBeCloseTo(1e6);
  });
});
