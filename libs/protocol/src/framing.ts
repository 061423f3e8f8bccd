export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

/**
 * What a `FrameDecoder` yields:
 * - `line`: one text line without its `\n` (or `\r\n`);
 * - `overflow`: a line grew past the limit; the rest of it, up to the next
 *   newline, is discarded and decoding resumes after it;
 * - `data`: exactly the number of raw bytes asked for with `expectData`.
 */
export type Frame =
  | { readonly type: 'line'; readonly line: string }
  | { readonly type: 'overflow'; readonly limit: number }
  | { readonly type: 'data'; readonly data: Buffer };

/** What `nextFrame` yields besides a `Frame`: a long line a sink took over (see `divert`) is over for it. */
export interface StreamedFrame {
  readonly type: 'streamed';
  readonly sink: LineSink;
}

/**
 * Takes over a line longer than the limit (see `FrameDecoder.divert`): it is
 * given the line's bytes as they arrive, and says how many it consumed.
 */
export interface LineSink {
  /**
   * Bytes of the line, from where the last call stopped. Returns how many it
   * took: all of them until it is `finished`, then those up to the line's
   * `\n` (included), or up to where it gave up early.
   */
  write(bytes: Buffer): number;
  /** The line is over for it: it read the `\n`, or gave up early (see `sawNewline`). */
  readonly finished: boolean;
  /** True once it read the `\n`; when it gave up before, the rest of the line is skipped unread. */
  readonly sawNewline: boolean;
}

const NEWLINE = 0x0a;

/**
 * Incremental splitter for a byte stream of text lines, optionally followed
 * by length-prefixed binary bodies. Feed it with `push`, drain it with `next`.
 * It never holds more than the line limit (or one expected body) in memory.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of `chunks` already searched for a newline. */
  private scanned = 0;
  private discarding = false;
  private expecting = 0;
  /** Whole lines still to drop unread (`skipLines`). */
  private skipping = 0;
  /** The sink taking the current long line, while it does. */
  private sink: LineSink | undefined;
  /**
   * Asked, for a line that passed the limit, whether a sink takes it over
   * (given the line's first `maxLineBytes` bytes or more, not yet consumed);
   * undefined (or returning undefined): the line overflows as usual.
   */
  divert: ((start: Buffer) => LineSink | undefined) | undefined;

  /** May be raised once the peer is trusted (a tracker may send long lines). */
  constructor(public maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next `n` lines are dropped as they arrive, whatever their length:
   * never decoded, never held, never yielded (a refused request's own lines).
   */
  skipLines(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad line count ${n}`);
    this.skipping += n;
  }

  /** Lines `skipLines` has yet to drop. */
  get linesToSkip(): number {
    return this.skipping;
  }

  /** The next `bytes` bytes of the stream are a binary body, returned whole as one `data` frame. */
  expectData(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`bad body length ${bytes}`);
    this.expecting = bytes;
  }

  /** The next frame; only a decoder that diverts long lines (`divert`) yields `streamed` frames, through `nextFrame`. */
  next(): Frame | undefined {
    const frame = this.nextFrame();
    if (frame?.type === 'streamed') throw new Error('a diverted line is read with nextFrame()');
    return frame;
  }

  nextFrame(): Frame | StreamedFrame | undefined {
    if (this.expecting > 0) return this.nextData();
    if (this.sink) return this.nextStreamed();
    for (;;) {
      const at = this.findNewline();
      if (this.discarding) {
        if (at < 0) {
          this.drop(this.buffered);
          return undefined;
        }
        this.drop(at + 1);
        this.discarding = false;
        continue;
      }
      if (this.skipping > 0) {
        if (at < 0) {
          this.drop(this.buffered);
          return undefined;
        }
        this.drop(at + 1);
        this.skipping--;
        continue;
      }
      if ((at < 0 && this.buffered > this.maxLineBytes) || at > this.maxLineBytes) {
        const sink = this.divert?.(this.peek(Math.min(this.buffered, this.maxLineBytes + 1)));
        if (sink) {
          this.sink = sink;
          return this.nextStreamed();
        }
      }
      if (at < 0) {
        if (this.buffered > this.maxLineBytes) {
          this.drop(this.buffered);
          this.discarding = true;
          return { type: 'overflow', limit: this.maxLineBytes };
        }
        return undefined;
      }
      if (at > this.maxLineBytes) {
        this.drop(at + 1);
        return { type: 'overflow', limit: this.maxLineBytes };
      }
      const raw = this.take(at + 1);
      const end = at > 0 && raw[at - 1] === 0x0d ? at - 1 : at;
      return { type: 'line', line: raw.toString('utf8', 0, end) };
    }
  }

  /** Feeds the sink what is buffered; the `streamed` frame once its line is over for it. */
  private nextStreamed(): StreamedFrame | undefined {
    const sink = this.sink!;
    while (this.chunks.length > 0) {
      this.drop(sink.write(this.chunks[0]));
      if (sink.finished) {
        this.sink = undefined;
        if (!sink.sawNewline) this.discarding = true;
        return { type: 'streamed', sink };
      }
    }
    return undefined;
  }

  /** The first `n` buffered bytes, left in place. */
  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    return Buffer.concat(this.chunks, this.buffered).subarray(0, n);
  }

  private nextData(): Frame | undefined {
    if (this.buffered < this.expecting) return undefined;
    const data = this.take(this.expecting);
    this.expecting = 0;
    return { type: 'data', data };
  }

  /** Offset of the first newline in the buffered bytes, or -1. */
  private findNewline(): number {
    let base = 0;
    for (const chunk of this.chunks) {
      if (base + chunk.length > this.scanned) {
        const from = Math.max(0, this.scanned - base);
        const i = chunk.indexOf(NEWLINE, from);
        if (i >= 0) return base + i;
      }
      base += chunk.length;
    }
    this.scanned = this.buffered;
    return -1;
  }

  /** Removes and returns the first `n` bytes as one buffer. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      for (const chunk of this.chunks) {
        const part = Math.min(chunk.length, n - filled);
        chunk.copy(out, filled, 0, part);
        filled += part;
        if (filled === n) break;
      }
    }
    this.drop(n);
    return out;
  }

  private drop(n: number): void {
    let left = n;
    while (left > 0) {
      const first = this.chunks[0];
      if (first.length <= left) {
        left -= first.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    this.scanned = 0;
  }
}
