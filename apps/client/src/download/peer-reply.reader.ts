import { FrameDecoder } from '@app/protocol';

/** Header and `ERR` lines are read into a reused buffer of this size; bodies are read in place. */
export const SCRATCH_READ_BYTES = 4 * 1024;
const NEWLINE = 0x0a;

/** What a `PeerReplyReader` finds in the stream, in stream order. */
export interface PeerReplySink {
  /** A header or `ERR` line, without its newline. Call `expectBody` from here when a body follows. */
  line(line: string): void;
  /** The body announced with `expectBody` is complete: `target`, now filled. */
  body(target: Buffer): void;
  /** A line grew past the limit (nothing more is delivered until `stop`, normally called from here). */
  overflow(limit: number): void;
}

/**
 * Splits a seeder's answers (`CHUNK <i> <len>` + body, or `ERR ...`) as the
 * socket reads them, for `net.connect({ onread })`: `nextBuffer` says where
 * the next read goes and `onRead` takes what it read.
 *
 * While a body is expected the next read goes straight into its unfilled
 * rest, and never past its end, so its bytes are not copied and the next
 * header arrives in a read of its own. Otherwise reads go into one small
 * reused scratch buffer; any body bytes read together with a header are
 * copied from there into the body, once.
 */
export class PeerReplyReader {
  private readonly scratch: Buffer;
  private readonly decoder: FrameDecoder;
  private target: Buffer | undefined;
  private filled = 0;
  private stopped = false;

  constructor(
    private readonly sink: PeerReplySink,
    maxLineBytes: number,
    scratchBytes = SCRATCH_READ_BYTES,
  ) {
    this.scratch = Buffer.allocUnsafe(scratchBytes);
    this.decoder = new FrameDecoder(maxLineBytes);
  }

  /** True while a body is expected and not yet complete. */
  get inBody(): boolean {
    return this.target !== undefined;
  }

  /** Where the next read must land: the unfilled rest of the body being received, else the scratch buffer. Never empty. */
  nextBuffer(): Buffer {
    const target = this.target;
    return target ? target.subarray(this.filled) : this.scratch;
  }

  /** From `sink.line`: the next `target.length` (> 0) bytes of the stream are a body, to be read into `target`. */
  expectBody(target: Buffer): void {
    if (target.length === 0) throw new RangeError('an empty body is not read');
    if (this.target) throw new Error('a body is already expected');
    this.target = target;
    this.filled = 0;
  }

  /** `n` bytes were read into `buf`, the buffer `nextBuffer` returned last. */
  onRead(buf: Uint8Array, n: number): void {
    if (this.stopped || n <= 0) return;
    if (buf === this.scratch) return this.fromScratch(n);
    // a read straight into the body: only its length needs counting (`buf` is always that body's rest, as
    // `nextBuffer` is asked again after every read and a body is only dropped by `stop`)
    const target = this.target;
    if (!target) return;
    this.filled += n;
    if (this.filled >= target.length) this.finishBody(target);
  }

  /** Delivers nothing more; returns the body buffer being filled, if any, for the caller to give back. */
  stop(): Buffer | undefined {
    this.stopped = true;
    const target = this.target;
    this.target = undefined;
    return target;
  }

  /**
   * Bytes of a stream that cannot read in place (a TLS socket's `data` events): body bytes are copied once into
   * the body being received, lines go through the decoder (which may keep `chunk`: it is the caller's no more).
   */
  onData(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.consume(chunk, chunk.length, false);
  }

  /** `n` bytes read into the scratch buffer, which the next read overwrites: nothing may keep it. */
  private fromScratch(n: number): void {
    this.consume(this.scratch, n, true);
  }

  /** The first `n` bytes of `bytes`, in stream order; `reused`: `bytes` is overwritten afterwards (copy lines out). */
  private consume(bytes: Buffer, n: number, reused: boolean): void {
    let at = 0;
    while (at < n && !this.stopped) {
      const target = this.target;
      if (target) {
        const take = Math.min(target.length - this.filled, n - at);
        bytes.copy(target, this.filled, at, at + take);
        this.filled += take;
        at += take;
        if (this.filled === target.length) this.finishBody(target);
        continue;
      }
      // a line: feed the decoder up to its newline only, so a body that follows is copied directly
      const newline = bytes.subarray(0, n).indexOf(NEWLINE, at);
      const end = newline < 0 ? n : newline + 1;
      const line = bytes.subarray(at, end);
      this.decoder.push(reused ? Buffer.from(line) : line);
      at = end;
      for (let frame = this.decoder.next(); frame && !this.stopped; frame = this.decoder.next()) {
        if (frame.type === 'overflow') this.sink.overflow(frame.limit);
        else if (frame.type === 'line') this.sink.line(frame.line);
      }
    }
  }

  private finishBody(target: Buffer): void {
    this.target = undefined;
    this.filled = 0;
    this.sink.body(target);
  }
}
