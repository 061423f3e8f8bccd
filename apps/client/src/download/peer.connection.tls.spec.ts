import { HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { acceptTls, Identity, loadOrCreateIdentity, serverContext, sniffStartTls } from '@app/tls';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { PeerError } from './download.errors';
import { PeerConnection } from './peer.connection';

/** How the scripted seeder meets `STARTTLS`. */
type Mode = 'tls' | 'busy' | 'close' | 'unknown';

/**
 * A seeder that takes connections one at a time: in `tls` mode it takes a TLS handshake from the first byte (unless
 * `direct` is false, as a seeder that knows only `STARTTLS`) or answers `STARTTLS`, handshakes with `identity`, then reads
 * lines inside TLS (`lines`), answering the HELLO and each `GET_CHUNK <i> <cap>` with `CHUNK <i> <len>` and the
 * bytes of `chunks[i]`, the replies of several requests written as one buffer cut at odd places.
 */
class TlsSeeder {
  readonly lines: string[] = [];
  /** Bytes received inside TLS. */
  received = 0;
  first: string | undefined;
  /** What each connection opened with, in order (`tls`: the handshake itself, `starttls`, `plain`). */
  readonly firsts: string[] = [];
  /** The connection is over (after the handshake, or during it). */
  closed = false;
  private readonly server = net.createServer((s) => void this.accept(s));
  private waiters: (() => void)[] = [];
  socket: TLSSocket | undefined;

  constructor(
    private readonly identity: Identity,
    private readonly mode: Mode,
    private readonly chunks: Buffer[] = [],
    private readonly direct = true,
  ) {}

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async until(check: () => boolean): Promise<void> {
    while (!check()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async accept(raw: net.Socket): Promise<void> {
    raw.on('error', () => undefined);
    const first = await sniffStartTls(raw, { directTls: this.direct });
    this.first = first.kind;
    this.firsts.push(first.kind);
    this.wake();
    if (first.kind !== 'starttls' && first.kind !== 'tls') return void raw.destroy();
    if (this.mode === 'busy') return void raw.end('ERR BUSY too many connections; try later\n');
    if (this.mode === 'close') return void raw.destroy();
    if (this.mode === 'unknown') return void raw.end('error: unknown command STARTTLS\n');
    const head = first.kind === 'tls' ? first.head : undefined;
    const tls = await acceptTls(raw, { context: serverContext(this.identity), timeoutMs: 5000, head }).catch(
      () => undefined,
    );
    if (!tls) {
      this.closed = true;
      return this.wake();
    }
    this.socket = tls;
    tls.on('error', () => undefined);
    tls.on('close', () => {
      this.closed = true;
      this.wake();
    });
    let pending = '';
    let replies: Buffer[] = [];
    tls.on('data', (d: Buffer) => {
      this.received += d.length;
      pending += d.toString('latin1');
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.lines.push(line);
        if (line === HELLO_LINE) {
          tls.write(`${HELLO_REPLY}\n`);
          continue;
        }
        const index = Number(line.split(' ')[1]);
        replies.push(Buffer.from(`CHUNK ${index} ${this.chunks[index].length}\n`), this.chunks[index]);
      }
      if (replies.length >= 6) {
        // three replies at once, cut at odd places: headers and bodies straddle the writes
        const all = Buffer.concat(replies);
        replies = [];
        for (let at = 0; at < all.length; at += 7777) tls.write(all.subarray(at, at + 7777));
      }
      this.wake();
    });
    this.wake();
  }
}

describe(`${PeerConnection.name} over TLS`, () => {
  let dir: string;
  let seederId: Identity;
  let otherId: Identity;
  const seeders: TlsSeeder[] = [];
  const conns: PeerConnection[] = [];

  const seeder = async (mode: Mode, identity = seederId, chunks: Buffer[] = [], direct = true) => {
    const s = await new TlsSeeder(identity, mode, chunks, direct).start();
    seeders.push(s);
    return s;
  };
  const connection = (pool?: ChunkBufferPool) => {
    const c = new PeerConnection({ pool });
    conns.push(c);
    return c;
  };
  const connect = (c: PeerConnection, port: number) =>
    c.connect('127.0.0.1', port, {
      connectTimeoutMs: 3000,
      fingerprint: seederId.fingerprint,
      label: 'alice at 127.0.0.1',
    });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'peer-tls-'));
    seederId = loadOrCreateIdentity(join(dir, 'a'), 'alice');
    otherId = loadOrCreateIdentity(join(dir, 'm'), 'mallory');
  });
  afterEach(async () => {
    for (const c of conns.splice(0)) c.close();
    for (const s of seeders.splice(0)) await s.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fetches pipelined chunks inside TLS into buffers of its pool, byte for byte', async () => {
    const chunks = [randomBytes(40_000), randomBytes(65_536), randomBytes(12_345)];
    const s = await seeder('tls', seederId, chunks);
    const pool = new ChunkBufferPool(65_536, 4);
    const c = connection(pool);
    expect(await connect(c, s.port)).toBe('extended');
    expect(c.tls).toBe(true);
    const got = await Promise.all([c.fetch(2, 'cap', 12_345), c.fetch(0, 'cap', 40_000), c.fetch(1, 'cap', 65_536)]);
    expect([got[0].equals(chunks[2]), got[1].equals(chunks[0]), got[2].equals(chunks[1])]).toEqual([true, true, true]);
    // the bodies landed in the pool's slots, not in buffers of their own
    expect(new Set(got.map((b) => b.buffer)).size).toBe(1);
    for (const b of got) pool.release(b);
    expect(pool.freeCount).toBe(3);
    expect(s.lines).toEqual([HELLO_LINE, 'GET_CHUNK 2 cap', 'GET_CHUNK 0 cap', 'GET_CHUNK 1 cap']);
    // one connection, TLS from its first byte: no STARTTLS line
    expect(s.firsts).toEqual(['tls']);
  });

  it('upgrades with STARTTLS when a seeder does not take the handshake as the first bytes', async () => {
    const chunks = [randomBytes(30_000), randomBytes(20_000), randomBytes(10_000)];
    const s = await seeder('tls', seederId, chunks, false);
    const c = connection();
    expect(await connect(c, s.port)).toBe('extended');
    expect(c.tls).toBe(true);
    const got = await Promise.all([c.fetch(1, 'cap', 20_000), c.fetch(0, 'cap', 30_000), c.fetch(2, 'cap', 10_000)]);
    expect(got.map((b, i) => b.equals(chunks[[1, 0, 2][i]]))).toEqual([true, true, true]);
    // the handshake read as plain bytes and closed, then STARTTLS on a second connection; never a line in clear
    expect(s.firsts).toEqual(['plain', 'starttls']);
    expect(s.lines).toEqual([HELLO_LINE, 'GET_CHUNK 1 cap', 'GET_CHUNK 0 cap', 'GET_CHUNK 2 cap']);
  });

  it('refuses a seeder with another certificate: an identity error, nothing sent inside TLS', async () => {
    const s = await seeder('tls', otherId);
    const c = connection();
    const err = (await connect(c, s.port).catch((e: unknown) => e)) as PeerError;
    expect(err).toBeInstanceOf(PeerError);
    expect(err.kind).toBe('identity');
    expect(err.message).toContain(`seeder alice at 127.0.0.1 presented certificate ${otherId.fingerprint}`);
    expect(err.message).toContain(seederId.fingerprint);
    // the seeder saw the handshake end and then the close, with not one byte inside TLS
    await s.until(() => s.closed);
    expect(s.received).toBe(0);
    expect(c.isOpen).toBe(false);
    // and no second try with STARTTLS: the certificate is the answer
    expect(s.firsts).toEqual(['tls']);
  });

  it('does not try STARTTLS after a handshake that gets no answer in time', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined).resume());
    let accepted = 0;
    silent.on('connection', () => accepted++);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const c = connection();
      const err = (await c
        .connect('127.0.0.1', (silent.address() as net.AddressInfo).port, {
          connectTimeoutMs: 300,
          fingerprint: seederId.fingerprint,
        })
        .catch((e: unknown) => e)) as PeerError;
      expect(err).toBeInstanceOf(PeerError);
      expect(err.kind).toBe('connect');
      expect(err.message).toMatch(/no handshake within 300 ms/);
      expect(accepted).toBe(1);
    } finally {
      await new Promise<void>((resolve) => {
        silent.close(() => resolve());
        for (const c of conns) c.close();
      });
    }
  });

  it('takes an ERR answer to STARTTLS as a refusal of the connection, with its code', async () => {
    const s = await seeder('busy', seederId, [], false);
    const err = (await connect(connection(), s.port).catch((e: unknown) => e)) as PeerError;
    expect({ kind: err.kind, code: err.code }).toEqual({ kind: 'connect', code: 'BUSY' });
    expect(err.message).toMatch(/refused the connection: BUSY too many connections/);
  });

  it('fails a seeder listed with a fingerprint that does not speak TLS, never falling back to clear text', async () => {
    const s = await seeder('unknown', seederId, [], false);
    const err = (await connect(connection(), s.port).catch((e: unknown) => e)) as PeerError;
    expect(err.kind).toBe('protocol');
    expect(err.message).toMatch(/listed as speaking TLS but answered STARTTLS with "error: unknown command/);
    const closing = await seeder('close', seederId, [], false);
    const closed = (await connect(connection(), closing.port).catch((e: unknown) => e)) as PeerError;
    expect(closed.kind).toBe('connect');
    expect(closed.message).toMatch(/closed the connection instead of TLS/);
    expect([s.firsts, closing.firsts]).toEqual([
      ['plain', 'starttls'],
      ['plain', 'starttls'],
    ]);
  });

  it('speaks in clear, with no STARTTLS, to a seeder listed without a fingerprint', async () => {
    const s = await seeder('tls');
    const c = connection();
    // the scripted seeder closes what is not STARTTLS: a plain HELLO then reads as the seed form
    expect(await c.connect('127.0.0.1', s.port, { connectTimeoutMs: 3000 })).toBe('seed');
    await s.until(() => s.first !== undefined);
    expect(s.first).toBe('plain');
    expect(c.tls).toBe(false);
  });
});
