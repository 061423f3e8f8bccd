import { RatePacer } from './rate-pacer';

describe(RatePacer.name, () => {
  let clock: number;
  const now = () => clock;

  beforeEach(() => {
    jest.useFakeTimers();
    clock = 0;
  });
  afterEach(() => jest.useRealTimers());

  /** Advances the fake clock and timers together, `ms` at a time. */
  const advance = async (ms: number) => {
    clock += ms;
    jest.advanceTimersByTime(ms);
    await Promise.resolve();
  };

  it('lets everything through at once without a limit', async () => {
    const pacer = new RatePacer(0, now);
    await expect(Promise.all([pacer.take(1e9, 'a'), pacer.take(1e9, 'b')])).resolves.toBeDefined();
  });

  it('keeps to the rate: the first grant at once, the next after bytes / rate', async () => {
    const pacer = new RatePacer(1000, now);
    const granted: number[] = [];
    for (let i = 0; i < 3; i++) void pacer.take(500, 'a').then(() => granted.push(clock));
    await advance(0);
    expect(granted).toEqual([0]);
    for (let t = 0; t < 1200; t += 100) await advance(100);
    expect(granted).toEqual([0, 500, 1000]);
  });

  it('takes keys in turn, whatever each has queued', async () => {
    const pacer = new RatePacer(1000, now);
    const order: string[] = [];
    for (let i = 0; i < 4; i++) void pacer.take(100, 'deep').then(() => order.push('deep'));
    void pacer.take(100, 'b').then(() => order.push('b'));
    void pacer.take(100, 'c').then(() => order.push('c'));
    for (let t = 0; t < 700; t += 50) await advance(50);
    // the first is granted before b and c queue; from then on the three take turns
    expect(order).toEqual(['deep', 'deep', 'b', 'c', 'deep', 'deep']);
  });

  it('applies a new rate to those already waiting', async () => {
    const pacer = new RatePacer(100, now);
    const granted: number[] = [];
    void pacer.take(1000, 'a').then(() => granted.push(clock));
    void pacer.take(1000, 'a').then(() => granted.push(clock));
    await advance(0);
    expect(granted).toEqual([0]); // the next would be at 10 s
    pacer.setRate(10_000); // ... now 100 ms after the first
    for (let t = 0; t < 200; t += 50) await advance(50);
    expect(granted).toEqual([0, 100]);
    pacer.setRate(0);
    await expect(pacer.take(1e9, 'b')).resolves.toBeUndefined();
  });

  it('rejects the waiters of a cancelled key and goes on with the others', async () => {
    const pacer = new RatePacer(1000, now);
    await pacer.take(1000, 'a');
    const gone = pacer.take(1000, 'a');
    const kept = pacer.take(1000, 'b');
    pacer.cancel('a');
    await expect(gone).rejects.toThrow('cancelled');
    expect(pacer.waiting).toBe(1);
    await advance(1000);
    await expect(kept).resolves.toBeUndefined();
  });

  it('refuses a negative or non-finite rate', () => {
    expect(() => new RatePacer(-1)).toThrow(RangeError);
    expect(() => new RatePacer(1).setRate(Number.NaN)).toThrow(RangeError);
  });
});
