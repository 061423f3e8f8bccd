/** Requests in flight to one peer at least and at most, whatever its rate. */
export const MIN_PIPELINE_DEPTH = 1;
export const MAX_PIPELINE_DEPTH = 32;
/** Time the pipeline covers beyond the round trip, so that the next request is there before the peer runs dry. */
export const DEFAULT_PIPELINE_MARGIN_MS = 50;
/** Weight of a new round-trip sample in its moving average. */
const ALPHA = 0.25;
/** The rate is bytes over busy time, both decaying with this time constant (ms). */
const RATE_TAU_MS = 500;

export interface PipelineSizerOptions {
  /** Bytes of a (full) chunk. */
  readonly chunkSize: number;
  /** Depth until the first chunk comes. Default 4. */
  readonly initialDepth?: number;
  readonly minDepth?: number;
  readonly maxDepth?: number;
  readonly marginMs?: number;
  /** Milliseconds clock. Default `performance.now`. */
  readonly now?: () => number;
}

/** A request as sent: when, and how many were outstanding before it on the same connection. */
export interface RequestStamp {
  readonly at: number;
  readonly ahead: number;
  readonly epoch: number;
}

/**
 * How many requests to keep outstanding with one peer: enough to cover what
 * it delivers in a round trip plus a margin, from moving averages of its rate
 * (bytes over the time the peer was busy sending them: a chunk counts from
 * its request or from the chunk before it, whichever is later; both sums decay
 * over about half a second, so chunks that come in a burst after a pause are
 * not taken for a fast peer) and of its round trip (as measured by the
 * caller, e.g. the answer to the HELLO). While the pipeline is too shallow
 * to cover the round trip, the rate seen grows with the depth, and the depth
 * with it, until the peer's own rate is reached. A fast peer on a LAN gets a deep
 * pipeline; a capped or slow one a shallow one, so few chunks wait at a peer
 * that will be slow to deliver them. Pure arithmetic on a clock.
 */
export class PipelineSizer {
  private readonly chunkSize: number;
  private readonly initialDepth: number;
  private readonly minDepth: number;
  private readonly maxDepth: number;
  private readonly marginMs: number;
  private readonly now: () => number;
  /** Bytes per second (0: no sample yet) and round trip in ms. */
  private bytesPerSecond = 0;
  private busyBytes = 0;
  private busyMs = 0;
  private roundTripMs = 0;
  /** Round trips observed. */
  private samples = 0;
  private outstanding = 0;
  private lastDoneAt = -Infinity;
  /** Bumped by `reset`: stamps of an older connection are ignored. */
  private epoch = 0;

  constructor(options: PipelineSizerOptions) {
    this.chunkSize = Math.max(1, options.chunkSize);
    this.minDepth = Math.max(1, options.minDepth ?? MIN_PIPELINE_DEPTH);
    this.maxDepth = Math.max(this.minDepth, options.maxDepth ?? MAX_PIPELINE_DEPTH);
    this.initialDepth = Math.min(this.maxDepth, Math.max(this.minDepth, options.initialDepth ?? 4));
    this.marginMs = Math.max(0, options.marginMs ?? DEFAULT_PIPELINE_MARGIN_MS);
    this.now = options.now ?? (() => performance.now());
  }

  /** Requests to keep outstanding now. */
  get depth(): number {
    if (this.bytesPerSecond === 0) return this.initialDepth;
    // the chunk coming in, and what the peer delivers while the next request travels (plus the margin), rounded to
    // the nearest: a peer that sends a chunk in many round trips (a capped seeder shared by many) is asked one at a
    // time, and so holds few of our requests it will be slow to serve
    const covered = (this.bytesPerSecond * (this.roundTripMs + this.marginMs)) / 1000 / this.chunkSize;
    return Math.min(this.maxDepth, Math.max(this.minDepth, Math.round(covered + 1)));
  }

  /** Bytes per second, moving average (0 before the first chunk). */
  get rate(): number {
    return this.bytesPerSecond;
  }

  get roundTrip(): number {
    return this.roundTripMs;
  }

  /** A request goes out now. */
  sent(): RequestStamp {
    return { at: this.now(), ahead: this.outstanding++, epoch: this.epoch };
  }

  /** A round trip to the peer was measured (e.g. the answer to the HELLO): `ms`. */
  observeRoundTrip(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.roundTripMs = this.samples === 0 ? ms : this.roundTripMs + ALPHA * (ms - this.roundTripMs);
    this.samples++;
  }

  /** The chunk asked for with `stamp` came, `bytes` long. */
  received(stamp: RequestStamp, bytes: number): void {
    if (stamp.epoch !== this.epoch) return;
    this.outstanding = Math.max(0, this.outstanding - 1);
    const now = this.now();
    // the chunk came in after the one before it (or after its request, if the pipeline had run dry)
    const took = Math.max(0, now - Math.max(stamp.at, this.lastDoneAt));
    this.lastDoneAt = now;
    const keep = Math.exp(-took / RATE_TAU_MS);
    this.busyBytes = this.busyBytes * keep + bytes;
    this.busyMs = this.busyMs * keep + took;
    this.bytesPerSecond = (this.busyBytes * 1000) / Math.max(0.5, this.busyMs);
  }

  /** The request of `stamp` got no chunk (refused, failed): it no longer counts as outstanding. */
  failed(stamp: RequestStamp): void {
    if (stamp.epoch === this.epoch) this.outstanding = Math.max(0, this.outstanding - 1);
  }

  /** A new connection: nothing is outstanding; what was measured stays. */
  reset(): void {
    this.epoch++;
    this.outstanding = 0;
    this.lastDoneAt = -Infinity;
  }
}
