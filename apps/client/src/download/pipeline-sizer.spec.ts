import { MAX_PIPELINE_DEPTH, MIN_PIPELINE_DEPTH, PipelineSizer } from './pipeline-sizer';

const KIB = 1024;

/**
 * Runs a peer that takes `roundTripMs` to start answering and then sends at `bytesPerSecond`, with the sizer's depth
 * of requests kept outstanding, for `chunks` chunks; returns the depth at the end.
 */
function run(sizer: PipelineSizer, clock: { t: number }, bytesPerSecond: number, roundTripMs: number, chunks = 200) {
  const chunkSize = 512 * KIB;
  const perChunk = (chunkSize * 1000) / bytesPerSecond;
  const queue: { stamp: ReturnType<PipelineSizer['sent']>; doneAt: number }[] = [];
  sizer.observeRoundTrip(roundTripMs);
  let lineFreeAt = clock.t;
  const send = () => {
    const stamp = sizer.sent();
    // the chunk's first byte is back a round trip after the request, or once the ones before it are through
    const start = Math.max(clock.t + roundTripMs, lineFreeAt);
    lineFreeAt = start + perChunk;
    queue.push({ stamp, doneAt: lineFreeAt });
  };
  for (let done = 0; done < chunks; done++) {
    while (queue.length < sizer.depth) send();
    const next = queue.shift()!;
    clock.t = Math.max(clock.t, next.doneAt);
    sizer.received(next.stamp, chunkSize);
  }
  return sizer.depth;
}

describe(PipelineSizer.name, () => {
  const sizer = (clock: { t: number }) => new PipelineSizer({ chunkSize: 512 * KIB, now: () => clock.t });

  it('starts at the initial depth, before anything is measured', () => {
    expect(sizer({ t: 0 }).depth).toBe(4);
    expect(new PipelineSizer({ chunkSize: 1, initialDepth: 100 }).depth).toBe(MAX_PIPELINE_DEPTH);
  });

  it('gives a fast peer a deep pipeline and a capped one a shallow one', () => {
    const fast = { t: 0 };
    const slow = { t: 0 };
    const fastSizer = sizer(fast);
    const slowSizer = sizer(slow);
    // 1 GB/s with a 1 ms round trip: 50 ms of margin hold about 100 chunks
    expect(run(fastSizer, fast, 1e9, 1)).toBe(MAX_PIPELINE_DEPTH);
    expect(fastSizer.rate).toBeGreaterThan(0.8e9);
    // 1 MB/s: half a chunk in the margin
    expect(run(slowSizer, slow, 1e6, 1)).toBe(MIN_PIPELINE_DEPTH);
    expect(slowSizer.rate).toBeGreaterThan(0.8e6);
    expect(slowSizer.rate).toBeLessThan(1.2e6);
  });

  it('covers a long round trip with more requests', () => {
    const near = { t: 0 };
    const far = { t: 0 };
    const nearSizer = sizer(near);
    const farSizer = sizer(far);
    const nearDepth = run(nearSizer, near, 20e6, 1);
    const farDepth = run(farSizer, far, 20e6, 200);
    // 20 MB/s over 250 ms is about 5 MB, ten chunks; over 51 ms two
    expect(farDepth).toBeGreaterThanOrEqual(9);
    expect(nearDepth).toBeLessThanOrEqual(4);
    expect(farDepth).toBeGreaterThan(nearDepth);
  });

  it('follows a peer whose rate changes', () => {
    const clock = { t: 0 };
    const s = sizer(clock);
    expect(run(s, clock, 1e9, 1)).toBe(MAX_PIPELINE_DEPTH);
    expect(run(s, clock, 1e6, 1, 50)).toBe(MIN_PIPELINE_DEPTH);
    // the rate is averaged over about half a second: a second of the fast peer again
    expect(run(s, clock, 1e9, 1, 2000)).toBe(MAX_PIPELINE_DEPTH);
  });

  it('does not take chunks that come in a burst after a pause for a fast peer', () => {
    const clock = { t: 0 };
    const s = sizer(clock);
    // 1 MB/s, but the chunks reach the reader four at a time (a busy event loop)
    const chunk = 512 * KIB;
    for (let k = 0; k < 10; k++) {
      const stamps = [s.sent(), s.sent(), s.sent(), s.sent()];
      clock.t += (4 * chunk * 1000) / 1e6;
      for (const stamp of stamps) s.received(stamp, chunk);
    }
    expect(s.rate).toBeGreaterThan(0.8e6);
    expect(s.rate).toBeLessThan(1.2e6);
    expect(s.depth).toBe(MIN_PIPELINE_DEPTH);
  });

  it('ignores what a previous connection still reports, and counts failed requests out', () => {
    const clock = { t: 0 };
    const s = sizer(clock);
    const old = s.sent();
    s.reset();
    clock.t = 10_000;
    s.received(old, 512 * KIB);
    expect(s.rate).toBe(0);
    s.observeRoundTrip(-1);
    expect(s.roundTrip).toBe(0);
    const a = s.sent();
    s.failed(a);
    const b = s.sent();
    expect(b.ahead).toBe(0);
    clock.t += 10;
    s.received(b, 512 * KIB);
    expect(s.rate).toBeCloseTo(512 * KIB * 100, -3);
  });
});
