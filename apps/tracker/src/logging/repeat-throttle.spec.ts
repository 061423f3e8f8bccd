import { RepeatThrottle } from './repeat-throttle';

describe(RepeatThrottle.name, () => {
  let now = 0;
  const clock = () => now;

  beforeEach(() => (now = 0));

  it('logs the first of a key, counts the repeats within the window, and logs the next one with that count', () => {
    const throttle = new RepeatThrottle(1, 10_000, 100, clock);
    expect(throttle.admit('TRY_LATER 10.0.0.9')).toEqual({ log: true, suppressed: 0 });
    now = 5_000;
    expect(throttle.admit('TRY_LATER 10.0.0.9')).toEqual({ log: false });
    expect(throttle.admit('TRY_LATER 10.0.0.9')).toEqual({ log: false });
    expect(throttle.admit('TRY_LATER 10.0.0.7')).toEqual({ log: true, suppressed: 0 }); // another key: its own
    now = 10_000;
    expect(throttle.admit('TRY_LATER 10.0.0.9')).toEqual({ log: true, suppressed: 2 });
    expect(throttle.admit('TRY_LATER 10.0.0.9')).toEqual({ log: false });
  });

  it('holds at most maxKeys keys, starting afresh past that', () => {
    const throttle = new RepeatThrottle(1, 10_000, 3, clock);
    for (const key of ['a', 'b', 'c']) throttle.admit(key);
    expect(throttle.admit('a')).toEqual({ log: false });
    expect(throttle.admit('d')).toEqual({ log: true, suppressed: 0 }); // the map was full: cleared
    expect(throttle.admit('a')).toEqual({ log: true, suppressed: 0 });
  });

  it('logs the first `burst` of a window, then counts', () => {
    const throttle = new RepeatThrottle(3, 10_000, 100, clock);
    const verdicts = Array.from({ length: 5 }, () => throttle.admit('k').log);
    expect(verdicts).toEqual([true, true, true, false, false]);
    now = 10_000;
    expect(throttle.admit('k')).toEqual({ log: true, suppressed: 2 });
  });
});
