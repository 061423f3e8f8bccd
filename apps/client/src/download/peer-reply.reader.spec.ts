import { parseChunkHeader } from '@app/protocol';
import { randomBytes } from 'node:crypto';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { PeerReplyReader } from './peer-reply.reader';

type Event =
  | { readonly type: 'line'; readonly line: string }
  | { readonly type: 'body'; readonly body: Buffer }
  | { readonly type: 'overflow'; readonly limit: number };

/**
 * A reader driven the way `net.connect({ onread })` drives it: every read
 * goes into the buffer `nextBuffer` gives and is at most that long. The sink
 * expects a body after each `CHUNK` line, in a buffer from `pool`.
 */
class Harness {
  readonly events: Event[] = [];
  /** Bodies handed to the reader, in order. */
  readonly targets: Buffer[] = [];
  /** Reads that went straight into a body, and reads into the scratch buffer. */
  direct = 0;
  scratch = 0;
  readonly reader: PeerReplyReader;

  constructor(
    readonly pool = new ChunkBufferPool(1024),
    maxLineBytes = 100,
    scratchBytes = 64,
  ) {
    this.reader = new PeerReplyReader(
      {
        line: (line) => {
          this.events.push({ type: 'line', line });
          if (!line.startsWith('CHUNK ')) return;
          const { length } = parseChunkHeader(line);
          if (length === 0) {
            this.events.push({ type: 'body', body: Buffer.alloc(0) });
            return;
          }
          const target = this.pool.acquire(length);
          this.targets.push(target);
          this.reader.expectBody(target);
        },
        body: (body) => this.events.push({ type: 'body', body }),
        overflow: (limit) => this.events.push({ type: 'overflow', limit }),
      },
      maxLineBytes,
      scratchBytes,
    );
  }

  /** Feeds `stream` in reads of at most `sizes[i]` bytes (cycling), each also cut at the end of `nextBuffer`. */
  feed(stream: Buffer, sizes: number | number[]): this {
    const cycle = typeof sizes === 'number' ? [sizes] : sizes;
    let at = 0;
    for (let k = 0; at < stream.length; k++) {
      const buf = this.reader.nextBuffer();
      expect(buf.length).toBeGreaterThan(0);
      if (this.reader.inBody) {
        // the read lands in the body being received, ending exactly at its end
        const target = this.targets[this.targets.length - 1];
        expect(buf.buffer).toBe(target.buffer);
        expect(buf.byteOffset + buf.length).toBe(target.byteOffset + target.length);
        this.direct++;
      } else {
        this.scratch++;
      }
      const n = Math.min(buf.length, cycle[k % cycle.length], stream.length - at);
      stream.copy(buf, 0, at, at + n);
      at += n;
      this.reader.onRead(buf, n);
    }
    return this;
  }

  get bodies(): Buffer[] {
    return this.events.flatMap((e) => (e.type === 'body' ? [e.body] : []));
  }
}

const chunk = (index: number, body: Buffer) => Buffer.concat([Buffer.from(`CHUNK ${index} ${body.length}\n`), body]);

describe(PeerReplyReader.name, () => {
  it('takes data events (a TLS socket) cut anywhere: lines, bodies copied into their pool buffers, in order', () => {
    const bodies = [randomBytes(700), randomBytes(1), randomBytes(1024)];
    const stream = Buffer.concat([
      chunk(0, bodies[0]),
      Buffer.from('ERR NOT_HELD chunk 5 is not here\n'),
      chunk(1, bodies[1]),
      chunk(2, bodies[2]),
    ]);
    for (const size of [1, 7, 100, 5000]) {
      const h = new Harness();
      for (let at = 0; at < stream.length; at += size) h.reader.onData(stream.subarray(at, at + size));
      expect(h.events).toEqual([
        { type: 'line', line: 'CHUNK 0 700' },
        { type: 'body', body: bodies[0] },
        { type: 'line', line: 'ERR NOT_HELD chunk 5 is not here' },
        { type: 'line', line: 'CHUNK 1 1' },
        { type: 'body', body: bodies[1] },
        { type: 'line', line: 'CHUNK 2 1024' },
        { type: 'body', body: bodies[2] },
      ]);
      // each body is the pool's buffer the reader was given
      expect(h.bodies).toEqual(h.targets);
      h.bodies.forEach((b, i) => expect(b).toBe(h.targets[i]));
    }
  });

  it('reads a body split across many tiny reads straight into its buffer', () => {
    const body = randomBytes(1000);
    const h = new Harness().feed(chunk(3, body), [1, 2, 3]);
    expect(h.events).toEqual([
      { type: 'line', line: 'CHUNK 3 1000' },
      { type: 'body', body },
    ]);
    expect(h.bodies[0]).toBe(h.targets[0]);
    // the header takes a few scratch reads, every body byte after it a direct one
    expect(h.direct).toBeGreaterThan(400);
    expect(h.scratch).toBeLessThanOrEqual(Math.ceil(Buffer.byteLength('CHUNK 3 1000\n') / 2) + 1);
  });

  it('takes a header, its body and the next header from one read, copying the body once', () => {
    const a = randomBytes(20);
    const b = randomBytes(700);
    const stream = Buffer.concat([chunk(0, a), chunk(1, b)]);
    const h = new Harness().feed(stream, 64);
    expect(h.events).toEqual([
      { type: 'line', line: 'CHUNK 0 20' },
      { type: 'body', body: a },
      { type: 'line', line: 'CHUNK 1 700' },
      { type: 'body', body: b },
    ]);
    expect(h.bodies[1]).toBe(h.targets[1]);
    // header 0, body 0 and header 1 all in the first 64-byte scratch read; the rest of body 1 read in place
    expect(h.scratch).toBe(1);
    expect(h.direct).toBe(Math.ceil((700 - (64 - 11 - 20 - 12)) / 64));
  });

  it('reassembles a header that arrives byte by byte', () => {
    const body = randomBytes(300);
    const stream = chunk(204_799, body);
    const header = stream.length - body.length;
    const sizes = [...Array<number>(header).fill(1), 1000];
    const h = new Harness().feed(stream, sizes);
    expect(h.events).toEqual([
      { type: 'line', line: 'CHUNK 204799 300' },
      { type: 'body', body },
    ]);
    expect(h.scratch).toBe(header);
    expect(h.direct).toBe(1);
  });

  it('handles a chunk of length 0 and a short last chunk without reading past its end', () => {
    const pool = new ChunkBufferPool(1024);
    // a pooled buffer, marked, comes back for the short chunk: nothing may be written past its 100 bytes
    const marked = pool.acquire(1024).fill(0xee);
    pool.release(marked);
    const full = randomBytes(1024);
    const last = randomBytes(100);
    const stream = Buffer.concat([
      chunk(5, Buffer.alloc(0)),
      chunk(6, last),
      chunk(7, full),
      chunk(8, Buffer.alloc(0)),
    ]);
    const h = new Harness(pool).feed(stream, 4096);
    expect(h.events).toEqual([
      { type: 'line', line: 'CHUNK 5 0' },
      { type: 'body', body: Buffer.alloc(0) },
      { type: 'line', line: 'CHUNK 6 100' },
      { type: 'body', body: last },
      { type: 'line', line: 'CHUNK 7 1024' },
      { type: 'body', body: full },
      { type: 'line', line: 'CHUNK 8 0' },
      { type: 'body', body: Buffer.alloc(0) },
    ]);
    expect(h.targets[0].buffer).toBe(marked.buffer);
    expect(Buffer.from(marked.buffer, 100, 924).equals(Buffer.alloc(924, 0xee))).toBe(true);
  });

  it('stops every body read at the announced length: extra bytes are read as the next line', () => {
    const h = new Harness().feed(Buffer.from('CHUNK 0 4\nabcdEXTRA\n'), [10, 1000]);
    expect(h.events).toEqual([
      { type: 'line', line: 'CHUNK 0 4' },
      { type: 'body', body: Buffer.from('abcd') },
      { type: 'line', line: 'EXTRA' },
    ]);
    // the body read was offered exactly 4 bytes
    expect(h.direct).toBe(1);
    expect(h.targets[0].toString()).toBe('abcd');
  });

  it('passes ERR lines between chunks, with \\r\\n accepted', () => {
    const a = randomBytes(50);
    const stream = Buffer.concat([
      Buffer.from('ERR NO_SUCH_CHUNK no chunk 1\r\n'),
      chunk(2, a),
      Buffer.from('ERR X y\n'),
    ]);
    const h = new Harness().feed(stream, [7, 13]);
    expect(h.events).toEqual([
      { type: 'line', line: 'ERR NO_SUCH_CHUNK no chunk 1' },
      { type: 'line', line: 'CHUNK 2 50' },
      { type: 'body', body: a },
      { type: 'line', line: 'ERR X y' },
    ]);
  });

  it('reports a line over the limit, even before its newline', () => {
    const h = new Harness(undefined, 100, 64).feed(Buffer.alloc(300, 'x'), 64);
    expect(h.events[0]).toEqual({ type: 'overflow', limit: 100 });
  });

  it('delivers nothing after stop, and hands back the body being filled', () => {
    const h = new Harness();
    h.feed(chunk(0, randomBytes(1000)).subarray(0, 500), 200);
    expect(h.reader.inBody).toBe(true);
    expect(h.reader.stop()).toBe(h.targets[0]);
    expect(h.reader.inBody).toBe(false);
    const buf = h.reader.nextBuffer();
    h.reader.onRead(buf, Buffer.from('CHUNK 1 1\nz').copy(buf));
    expect(h.events).toEqual([{ type: 'line', line: 'CHUNK 0 1000' }]);
    expect(h.reader.stop()).toBeUndefined();
  });

  it.each([1, 5, 64, 1000, 5000])('splits a long pipelined stream read at most %d bytes at a time', (size) => {
    const bodies = [100, 1024, 0, 1, 1023, 1024, 7].map((n) => randomBytes(n));
    const stream = Buffer.concat(bodies.map((b, i) => chunk(i, b)));
    const h = new Harness().feed(stream, size);
    expect(h.bodies).toEqual(bodies);
  });
});
