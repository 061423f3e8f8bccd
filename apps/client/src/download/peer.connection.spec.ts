import { ErrorCode, HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { PeerError } from './download.errors';
import { PeerConnection } from './peer.connection';
import { unusedPort } from './testing/fake-seeder.server';

/**
 * A server whose one accepted socket the test drives by hand. A first line
 * `HELLO p2p-share/2` is answered `OK 0 p2p-share/2` and not listed in
 * `lines`, unless `greet` is false (then it is listed and left unanswered).
 */
class ScriptedPeer {
  readonly lines: string[] = [];
  greet = true;
  socket: net.Socket | undefined;
  private readonly server = net.createServer((s) => this.accept(s));
  private waiters: { count: number; resolve: () => void }[] = [];
  private onAccepted: () => void = () => undefined;
  private readonly wasAccepted = new Promise<void>((resolve) => (this.onAccepted = resolve));
  private onClosed: () => void = () => undefined;
  private readonly closed = new Promise<void>((resolve) => (this.onClosed = resolve));

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  received(count: number): Promise<void> {
    if (this.lines.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  accepted(): Promise<void> {
    return this.wasAccepted;
  }

  /** Resolves when the client side closed the connection. */
  clientClosed(): Promise<void> {
    return this.closed;
  }

  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve) => this.socket!.write(data, () => resolve()));
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.socket = socket;
    this.onAccepted();
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClosed());
    let text = '';
    let greeted = false;
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n')) {
        const line = text.slice(0, at);
        if (this.greet && line === HELLO_LINE && !greeted) {
          greeted = true;
          socket.write(`${HELLO_REPLY}\n`);
          text = text.slice(at + 1);
          continue;
        }
        greeted = true;
        this.lines.push(line);
        text = text.slice(at + 1);
      }
      this.waiters = this.waiters.filter((w) => (this.lines.length >= w.count ? (w.resolve(), false) : true));
    });
  }
}

/** Resolves once `check` holds (polled), failing after `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const chunk = (index: number, body: Buffer) => Buffer.concat([Buffer.from(`CHUNK ${index} ${body.length}\n`), body]);

describe(PeerConnection.name, () => {
  let peer: ScriptedPeer;
  let conn: PeerConnection;

  beforeEach(async () => {
    peer = await new ScriptedPeer().start();
    conn = new PeerConnection();
  });

  afterEach(async () => {
    conn.close();
    await peer.stop();
  });

  const connect = (inactivityTimeoutMs = 5_000) =>
    conn.connect('127.0.0.1', peer.port, { connectTimeoutMs: 2_000, inactivityTimeoutMs });

  it('pipelines requests on one socket and matches the answers in order', async () => {
    await connect();
    expect(conn.helloRoundTripMs).toBeGreaterThanOrEqual(0);
    const bodies = [randomBytes(70_000), randomBytes(5), randomBytes(300_000)];
    const results = bodies.map((b, i) => conn.fetch(i + 10, '/share/my file.bin', b.length));
    expect(conn.outstanding).toBe(3);
    // all three requests are on the wire before any answer
    await peer.received(3);
    expect(peer.lines).toEqual([
      'GET_CHUNK 10 "/share/my file.bin"',
      'GET_CHUNK 11 "/share/my file.bin"',
      'GET_CHUNK 12 "/share/my file.bin"',
    ]);
    // answers arrive in one stream, split at awkward places
    const stream = Buffer.concat(bodies.map((b, i) => chunk(i + 10, b)));
    const cuts = [0, 3, 40, 70_020, 70_030, 70_040, stream.length];
    for (let i = 1; i < cuts.length; i++) await peer.write(stream.subarray(cuts[i - 1], cuts[i]));
    const got = await Promise.all(results);
    got.forEach((g, i) => expect(g.equals(bodies[i])).toBe(true));
    expect(conn.outstanding).toBe(0);
    expect(conn.isOpen).toBe(true);
  });

  it('receives bodies into buffers from its pool', async () => {
    const pool = new ChunkBufferPool(100);
    const pooled = new PeerConnection({ pool });
    await pooled.connect('127.0.0.1', peer.port);
    const first = pooled.fetch(0, '/f', 100);
    await peer.received(1);
    await peer.write(chunk(0, Buffer.alloc(100, 1)));
    const a = await first;
    expect(a.equals(Buffer.alloc(100, 1))).toBe(true);
    pool.release(a);
    const second = pooled.fetch(1, '/f', 60);
    await peer.received(2);
    await peer.write(chunk(1, Buffer.alloc(60, 2)));
    const b = await second;
    expect(b.buffer).toBe(a.buffer);
    expect(b.equals(Buffer.alloc(60, 2))).toBe(true);
    pooled.close();
  });

  describe('reading bodies in place', () => {
    it('receives a body sent in many tiny writes', async () => {
      await connect();
      const body = randomBytes(3000);
      const result = conn.fetch(4, '/f', body.length);
      await peer.received(1);
      peer.socket!.setNoDelay(true);
      const stream = chunk(4, body);
      for (let at = 0, k = 0; at < stream.length; k++) {
        const size = 1 + (k % 7) * 50;
        await peer.write(stream.subarray(at, at + size));
        at += size;
      }
      expect((await result).equals(body)).toBe(true);
      expect(conn.isOpen).toBe(true);
    });

    it('receives a header sent byte by byte, then a large body', async () => {
      await connect();
      const body = randomBytes(600_000);
      const result = conn.fetch(204_799, '/f', body.length);
      await peer.received(1);
      peer.socket!.setNoDelay(true);
      for (const byte of Buffer.from(`CHUNK 204799 ${body.length}\n`)) await peer.write(Buffer.of(byte));
      await peer.write(body);
      expect((await result).equals(body)).toBe(true);
    });

    it('takes headers, bodies and ERR lines all sent in one write', async () => {
      await connect();
      const bodies = [randomBytes(10), randomBytes(200_000), randomBytes(3)];
      const a = conn.fetch(0, '/f', 10);
      const b = conn.fetch(1, '/f', 200_000);
      const e = conn.fetch(2, '/f', 5);
      const c = conn.fetch(3, '/f', 3);
      await peer.received(4);
      await peer.write(
        Buffer.concat([
          chunk(0, bodies[0]),
          chunk(1, bodies[1]),
          Buffer.from('ERR NO_SUCH_CHUNK no\n'),
          chunk(3, bodies[2]),
        ]),
      );
      expect((await a).equals(bodies[0])).toBe(true);
      expect((await b).equals(bodies[1])).toBe(true);
      await expect(e).rejects.toMatchObject({ kind: 'refused', code: 'NO_SUCH_CHUNK' });
      expect((await c).equals(bodies[2])).toBe(true);
      expect(conn.isOpen).toBe(true);
    });

    it('answers a chunk of length 0 and a short last chunk, in pooled buffers', async () => {
      const pool = new ChunkBufferPool(100_000);
      const pooled = new PeerConnection({ pool });
      await pooled.connect('127.0.0.1', peer.port);
      const full = randomBytes(100_000);
      const last = randomBytes(123);
      const results = [
        pooled.fetch(0, '/f', 0),
        pooled.fetch(1, '/f', full.length),
        pooled.fetch(2, '/f', last.length),
      ];
      await peer.received(3);
      await peer.write(Buffer.concat([chunk(0, Buffer.alloc(0)), chunk(1, full), chunk(2, last)]));
      const [empty, a, b] = await Promise.all(results);
      expect(empty.length).toBe(0);
      expect(a.equals(full)).toBe(true);
      expect(b.equals(last)).toBe(true);
      pool.release(a);
      pool.release(b);
      expect(pool.freeCount).toBe(2);
      pooled.close();
    });

    it('closes when the seeder sends more bytes than it announced', async () => {
      await connect();
      const a = conn.fetch(0, '/f', 4);
      const b = conn.fetch(1, '/f', 4);
      await peer.received(2);
      await peer.write('CHUNK 0 4\nabcdefCHUNK 1 4\nwxyz');
      await expect(a).resolves.toEqual(Buffer.from('abcd'));
      await expect(b).rejects.toMatchObject({ kind: 'protocol', message: /sent a malformed reply \("efCHUNK 1 4"\)/ });
      expect(conn.isOpen).toBe(false);
      await peer.clientClosed();
    });

    it('closes when bytes follow the last answer', async () => {
      await connect();
      const a = conn.fetch(0, '/f', 4);
      await peer.received(1);
      await peer.write('CHUNK 0 4\nabcdEXTRA\n');
      await expect(a).resolves.toEqual(Buffer.from('abcd'));
      await peer.clientClosed();
      await expect(conn.fetch(1, '/f', 4)).rejects.toMatchObject({
        kind: 'protocol',
        message: /sent data with no request outstanding/,
      });
    });

    it('gives the body buffer back to the pool when the seeder closes mid-body', async () => {
      const pool = new ChunkBufferPool(500_000);
      const pooled = new PeerConnection({ pool });
      await pooled.connect('127.0.0.1', peer.port);
      const a = pooled.fetch(0, '/f', 500_000);
      await peer.received(1);
      await peer.write(chunk(0, randomBytes(500_000)).subarray(0, 300_000));
      peer.socket!.destroy();
      await expect(a).rejects.toMatchObject({ kind: 'closed', message: /closed the connection/ });
      expect(pool.freeCount).toBe(1);
    });
  });

  it('fails only the request answered with ERR', async () => {
    await connect();
    const a = conn.fetch(0, '/f', 4);
    const b = conn.fetch(1, '/f', 4);
    const c = conn.fetch(2, '/f', 4);
    await peer.received(3);
    await peer.write(Buffer.concat([chunk(0, Buffer.from('aaaa')), Buffer.from('ERR NO_SUCH_CHUNK no chunk 1\n')]));
    await peer.write(chunk(2, Buffer.from('cccc')));
    await expect(a).resolves.toEqual(Buffer.from('aaaa'));
    await expect(b).rejects.toMatchObject({ kind: 'refused', code: 'NO_SUCH_CHUNK', message: /no chunk 1/ });
    await expect(c).resolves.toEqual(Buffer.from('cccc'));
    expect(conn.isOpen).toBe(true);
  });

  it.each([
    ['another index', chunk(8, Buffer.from('xxxx')), /answered chunk 8 of 4 bytes, expected chunk 7 of 4/],
    ['another length', chunk(7, Buffer.from('xxx')), /answered chunk 7 of 3 bytes, expected chunk 7 of 4/],
    ['a line that is no answer', 'OK 0 fine\n', /sent a malformed reply \("OK 0 fine"\)/],
    ['garbage', 'HELLO\n', /sent a malformed reply \("HELLO"\)/],
    ['an endless line', Buffer.alloc(20_000, 'x'), /longer than/],
  ])('closes on a header with %s, failing every outstanding request', async (_, answer, message) => {
    await connect();
    const first = conn.fetch(7, '/f', 4);
    const second = conn.fetch(9, '/f', 4);
    await peer.received(2);
    await peer.write(answer);
    await expect(first).rejects.toMatchObject({ kind: 'protocol', message });
    await expect(second).rejects.toMatchObject({ kind: 'protocol' });
    expect(conn.isOpen).toBe(false);
    await peer.clientClosed();
    await expect(conn.fetch(1, '/f', 4)).rejects.toMatchObject({ kind: 'protocol' });
  });

  it('never echoes a malformed reply: a short escaped excerpt of its start only', async () => {
    await connect();
    const request = conn.fetch(0, '/f', 4);
    await peer.received(1);
    await peer.write(Buffer.from(`\x1b[2J\x1b]0;owned\x07\u202eexe.pdf ${'A'.repeat(5000)}\n`, 'utf8'));
    const err = (await request.catch((e: unknown) => e)) as PeerError;
    expect(err.kind).toBe('protocol');
    expect(err.message).toMatch(
      /sent a malformed reply \("\\x1b\[2J\\x1b\]0;owned\\x07\\u\{202e\}exe\.pdf A\.\.\."\)$/,
    );
    expect(err.message).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e]/);
  });

  it('keeps a seeder’s refusal message short and escaped', async () => {
    await connect();
    const request = conn.fetch(0, '/f', 4);
    await peer.received(1);
    await peer.write(Buffer.from(`ERR NOT_SHARED \x1b[31mred\u202e ${'m'.repeat(1000)}\n`, 'utf8'));
    const err = (await request.catch((e: unknown) => e)) as PeerError;
    expect(err).toMatchObject({ kind: 'refused', code: 'NOT_SHARED' });
    expect(err.message).toContain('NOT_SHARED \\x1b[31mred\\u{202e} mmm');
    expect(err.message).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e]/);
    expect(err.message.length).toBeLessThan(250);
  });

  it('times out when no byte arrives while requests are outstanding, and closes the socket', async () => {
    await connect(150);
    const a = conn.fetch(0, '/f', 10);
    const b = conn.fetch(1, '/f', 10);
    const started = Date.now();
    await expect(a).rejects.toBeInstanceOf(PeerError);
    await expect(a).rejects.toMatchObject({ kind: 'timeout', message: /sent nothing for 150 ms/ });
    await expect(b).rejects.toMatchObject({ kind: 'timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await peer.clientClosed();
  });

  it('keeps waiting while bytes trickle in, however long the whole answer takes', async () => {
    await connect(300);
    const body = randomBytes(4000);
    const result = conn.fetch(0, '/f', body.length);
    await peer.received(1);
    const stream = chunk(0, body);
    const parts = 8;
    const started = Date.now();
    for (let i = 0; i < parts; i++) {
      await peer.write(stream.subarray((i * stream.length) / parts, ((i + 1) * stream.length) / parts));
      await new Promise((resolve) => setTimeout(resolve, 60)); // the behaviour under test: a slow trickle
    }
    expect(Date.now() - started).toBeGreaterThan(300);
    expect((await result).equals(body)).toBe(true);
  });

  it('does not time out while idle', async () => {
    await connect(50);
    const got = conn.fetch(0, '/f', 1);
    await peer.received(1);
    await peer.write(chunk(0, Buffer.from('z')));
    await got;
    // the behaviour under test: idle for longer than the timeout, and still open
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(conn.isOpen).toBe(true);
  });

  it('fails outstanding requests when the seeder closes mid-body', async () => {
    await connect();
    const a = conn.fetch(0, '/f', 1000);
    const b = conn.fetch(1, '/f', 1000);
    await peer.received(2);
    await peer.write(chunk(0, randomBytes(1000)).subarray(0, 500));
    peer.socket!.destroy();
    await expect(a).rejects.toMatchObject({ kind: 'closed', message: /closed the connection/ });
    await expect(b).rejects.toMatchObject({ kind: 'closed' });
    await expect(conn.fetch(2, '/f', 1)).rejects.toMatchObject({ kind: 'closed' });
  });

  it('fails outstanding requests when closed locally', async () => {
    await connect();
    const a = conn.fetch(0, '/f', 10);
    conn.close();
    await expect(a).rejects.toMatchObject({ kind: 'closed' });
    await peer.clientClosed();
  });

  it('reports an ERR sent before any request as a connect error with its code', async () => {
    await connect();
    await peer.accepted();
    peer.socket!.end('ERR BUSY serving 1 connections already; try later\n');
    await peer.clientClosed();
    expect(conn.isOpen).toBe(false);
    await expect(conn.fetch(0, '/f', 1)).rejects.toMatchObject({
      kind: 'connect',
      code: 'BUSY',
      message: /refused the connection: BUSY serving 1 connections already/,
    });
  });

  it('reports a refused connection as a connect error', async () => {
    const port = await unusedPort();
    await expect(new PeerConnection().connect('127.0.0.1', port, { connectTimeoutMs: 2_000 })).rejects.toMatchObject({
      kind: 'connect',
      message: new RegExp(`cannot connect to 127.0.0.1:${port}: .*ECONNREFUSED`),
    });
  });

  describe('the HELLO that opens the extended form', () => {
    beforeEach(() => (peer.greet = false));

    it('sends HELLO p2p-share/2 first and is ready once OK 0 p2p-share/2 is back', async () => {
      const form = conn.connect('127.0.0.1', peer.port, { connectTimeoutMs: 2_000 });
      await peer.received(1);
      expect(peer.lines).toEqual([HELLO_LINE]);
      await peer.write(`${HELLO_REPLY}\n`);
      await expect(form).resolves.toBe('extended');
      const got = conn.fetch(0, 'cap', 3);
      await peer.received(2);
      expect(peer.lines[1]).toBe('GET_CHUNK 0 cap');
      await peer.write(chunk(0, Buffer.from('abc')));
      expect((await got).toString()).toBe('abc');
    });

    it('takes an ERR answer to the HELLO as a refusal of the connection, with its code', async () => {
      const form = conn.connect('127.0.0.1', peer.port, { connectTimeoutMs: 2_000 });
      await peer.received(1);
      await peer.write('ERR BUSY serving 512 connections already; try later\n');
      await expect(form).rejects.toMatchObject({
        kind: 'connect',
        code: 'BUSY',
        message: /refused the connection: BUSY serving 512 connections already/,
      });
    });

    it.each([
      ['junk', (p: ScriptedPeer) => p.write('invalid command\n')],
      [
        'raw bytes without a newline, then a close',
        (p: ScriptedPeer) => p.write(randomBytes(300)).then(() => p.stop()),
      ],
      ['a close without a byte', (p: ScriptedPeer) => p.stop()],
    ])('finds a seeder that answers the HELLO with %s to speak only the seed form', async (_, answer) => {
      const form = conn.connect('127.0.0.1', peer.port, { connectTimeoutMs: 2_000 });
      await peer.received(1);
      await answer(peer);
      await expect(form).resolves.toBe('seed');
      expect(conn.isOpen).toBe(false);
    });

    it('finds a seeder that does not answer the HELLO within the connect timeout to speak only the seed form', async () => {
      const form = conn.connect('127.0.0.1', peer.port, { connectTimeoutMs: 200 });
      await peer.received(1);
      await expect(form).resolves.toBe('seed');
      await peer.clientClosed();
    });

    it('rejects when closed locally while waiting for the answer', async () => {
      const form = conn.connect('127.0.0.1', peer.port, { connectTimeoutMs: 2_000 });
      await peer.received(1);
      conn.close();
      await expect(form).rejects.toMatchObject({ kind: 'closed' });
    });
  });

  describe('have-lists: BITFIELD, HAVE and NOT_HELD', () => {
    it('asks for the have-list in its place among the requests and reads it', async () => {
      await connect();
      const body = randomBytes(20);
      const a = conn.fetch(3, 'cap', 20);
      const held = conn.bitfield('cap', 10);
      const b = conn.fetch(4, 'cap', 20);
      await peer.received(3);
      expect(peer.lines).toEqual(['GET_CHUNK 3 cap', 'BITFIELD cap', 'GET_CHUNK 4 cap']);
      // chunks 0, 3, 4 and 9: bits 1001 1000 01
      await peer.write(Buffer.concat([chunk(3, body), Buffer.from('BITFIELD 10 mEA\n'), chunk(4, body)]));
      expect((await a).equals(body)).toBe(true);
      expect(Array.from((await held) as Uint8Array)).toEqual([1, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
      expect((await b).equals(body)).toBe(true);
    });

    it('takes an older seeder answering UNKNOWN_COMMAND as holding every chunk', async () => {
      await connect();
      const held = conn.bitfield('cap', 10);
      await peer.received(1);
      await peer.write('ERR UNKNOWN_COMMAND unknown peer command BITFIELD\n');
      expect(await held).toBe('all');
      expect(conn.isOpen).toBe(true);
    });

    it('hands HAVE lines pushed between replies to onHave, never taking one for a reply', async () => {
      const haves: number[][] = [];
      conn.onHave = (indexes) => haves.push(indexes);
      await connect();
      const held = conn.bitfield('cap', 10);
      await peer.received(1);
      await peer.write('BITFIELD 10 AAA\nHAVE 2\n');
      expect(Array.from((await held) as Uint8Array)).toEqual(new Array(10).fill(0));
      const body = randomBytes(100_000);
      const a = conn.fetch(2, 'cap', body.length);
      const b = conn.fetch(5, 'cap', 3);
      await peer.received(3);
      // a HAVE right after a body, in the same write as the next reply, and one with no request outstanding
      await peer.write(Buffer.concat([chunk(2, body), Buffer.from('HAVE 5,9\n'), chunk(5, Buffer.from('abc'))]));
      await peer.write('HAVE 7\n');
      expect((await a).equals(body)).toBe(true);
      expect((await b).toString()).toBe('abc');
      await eventually(() => haves.length === 3);
      expect(haves).toEqual([[2], [5, 9], [7]]);
      expect(conn.isOpen).toBe(true);
    });

    it('fails a chunk the seeder lacks as refused NOT_HELD, and goes on', async () => {
      await connect();
      const a = conn.fetch(1, 'cap', 3);
      const b = conn.fetch(2, 'cap', 3);
      await peer.received(2);
      await peer.write('ERR NOT_HELD chunk 1 is not here yet\nCHUNK 2 3\nxyz');
      await expect(a).rejects.toMatchObject({ kind: 'refused', code: ErrorCode.NotHeld });
      expect((await b).toString()).toBe('xyz');
      expect(conn.isOpen).toBe(true);
    });

    it.each([
      ['a HAVE before any have-list', [], 'HAVE 1\n', /before its have-list/],
      ['a malformed HAVE', [10], 'BITFIELD 10 AAA\nHAVE 1,x\n', /malformed/],
      ['a HAVE past the end of the file', [10], 'BITFIELD 10 AAA\nHAVE 10\n', /malformed/],
      ['a have-list of another chunk count', [10], 'BITFIELD 11 AAA\n', /malformed/],
      ['a have-list with spare bits set', [10], 'BITFIELD 10 AAE\n', /malformed/],
    ])('drops the seeder on %s', async (_what, bitfield, reply, error) => {
      await connect();
      const asked = bitfield.map((n) => conn.bitfield('cap', n));
      const pending = conn.fetch(0, 'cap', 3);
      await peer.received(1 + asked.length);
      await peer.write(reply);
      const err = await pending.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PeerError);
      expect((err as PeerError).kind).toBe('protocol');
      expect((err as PeerError).message).toMatch(error);
      await Promise.allSettled(asked);
      expect(conn.isOpen).toBe(false);
    });
  });

  it('rejects a fetch before connecting', async () => {
    await expect(new PeerConnection().fetch(0, '/f', 1)).rejects.toMatchObject({ kind: 'closed' });
  });
});
