interface Sample {
  readonly at: number;
  readonly bytes: number;
}

/** Samples closer together than this are merged. */
const MIN_SAMPLE_GAP_MS = 100;

/**
 * Turns a growing byte count into a current speed (over the last
 * `windowMs`) and an average speed. Times are milliseconds from any clock.
 */
export class SpeedMeter {
  private samples: Sample[];
  private bytes = 0;

  constructor(
    private readonly startedAt: number,
    private readonly windowMs = 3_000,
  ) {
    this.samples = [{ at: startedAt, bytes: 0 }];
  }

  /** `bytes` done in total at time `at`. */
  record(bytes: number, at: number): void {
    this.bytes = bytes;
    const last = this.samples[this.samples.length - 1];
    if (at - last.at < MIN_SAMPLE_GAP_MS) return;
    this.samples.push({ at, bytes });
    // keep exactly one sample at or before the window's start, as its base
    const from = at - this.windowMs;
    let drop = 0;
    while (drop + 1 < this.samples.length && this.samples[drop + 1].at <= from) drop++;
    if (drop > 0) this.samples.splice(0, drop);
  }

  /** Bytes per second over the last `windowMs` before `now` (or since the start, if sooner). */
  current(now: number): number {
    const from = now - this.windowMs;
    let base = this.samples[0];
    for (const s of this.samples) if (s.at <= from) base = s;
    const span = now - base.at;
    return span > 0 ? (1000 * (this.bytes - base.bytes)) / span : 0;
  }

  /** Bytes per second from the start to `now`. */
  average(now: number): number {
    const span = now - this.startedAt;
    return span > 0 ? (1000 * this.bytes) / span : 0;
  }
}
