import { CHUNK_SIZE } from '@app/chunking';
import { formatBitfieldRequest, formatGetChunk, HELLO_LINE, STARTTLS_REPLY } from '@app/protocol';
import { Identity, loadOrCreateIdentity } from '@app/tls';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { CapabilityVerifier } from './capability.verifier';
import { ChunkServer } from './chunk.server';
import { PartialShares } from './partial-shares';
import { ChunkServerOptions } from './seeding.tokens';
import { ShareRegistry } from './share.registry';
import { TestCapabilityIssuer } from './testing/capability.fixtures';
import { ChunkSocket, PeerAnswer } from './testing/chunk-socket';
import { eventually, sha1, shareOf, TempDirs } from './testing/seeding.fixtures';

const get = (index: number, capability: string) => formatGetChunk({ index, capability });

/** Everything a raw socket receives until the server closes (or ends) it (rejects after `timeoutMs`). */
function collectUntilClosed(socket: Socket, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', () => undefined);
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    };
    // the server's FIN or a reset (the socket is half-open on our side)
    socket.once('end', done).once('close', done);
  });
}

describe(`${ChunkServer.name} over TLS`, () => {
  const temp = new TempDirs();
  const raws: Socket[] = [];
  const sockets: ChunkSocket[] = [];
  let identity: Identity;
  let registry: ShareRegistry;
  let verifier: CapabilityVerifier;
  let issuer: TestCapabilityIssuer;
  let partials: PartialShares;
  let server: ChunkServer;
  let port: number;
  let big: Buffer;
  let bigCap: string;
  let dir: string;

  const chunkOf = (data: Buffer, i: number) => data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);
  const expectChunk = (answer: PeerAnswer, index: number, bytes: Buffer) => {
    expect(answer.kind === 'chunk' ? { index: answer.index, length: answer.data.length } : answer).toEqual({
      index,
      length: bytes.length,
    });
    if (answer.kind === 'chunk') expect(answer.data.equals(bytes)).toBe(true);
  };
  const startServer = async (options: Partial<ChunkServerOptions> = {}) => {
    await server?.stop();
    server = new ChunkServer({ host: '127.0.0.1', port: 0, ...options }, registry, verifier, partials, {
      get: () => identity,
    });
    port = (await server.start()).port;
  };
  const tls = async (form: 'extended' | 'seed' = 'extended') => {
    const s = await ChunkSocket.openTls(port, identity.fingerprint, form);
    sockets.push(s);
    return s;
  };
  const direct = async (form: 'extended' | 'seed' = 'extended') => {
    const s = await ChunkSocket.openDirectTls(port, identity.fingerprint, form);
    sockets.push(s);
    return s;
  };
  const plain = async (form: 'extended' | 'seed' = 'extended') => {
    const s = await ChunkSocket.open(port, '127.0.0.1', undefined, form);
    sockets.push(s);
    return s;
  };
  const dial = async () => {
    const s = await ChunkSocket.dial(port);
    raws.push(s);
    return s;
  };

  beforeAll(() => {
    identity = loadOrCreateIdentity(temp.make(), 'p2p-share client test');
  });

  beforeEach(async () => {
    dir = temp.make();
    mkdirSync(join(dir, 'shared'));
    registry = new ShareRegistry({ dataDir: join(temp.make(), 'data') });
    await registry.load();
    big = randomBytes(2 * CHUNK_SIZE + 12_345);
    const path = join(dir, 'shared/big.bin');
    writeFileSync(path, big);
    const bigShare = await registry.add(await shareOf(path, { groupId: 'g1' }));
    issuer = new TestCapabilityIssuer();
    verifier = new CapabilityVerifier({ capabilitySkewMs: 60_000 });
    verifier.trust('alice', issuer.rawPublicKey);
    bigCap = issuer.for(bigShare);
    partials = new PartialShares();
    await startServer();
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of raws.splice(0)) s.destroy();
    await server.stop();
    await partials.closeAll();
  });

  afterAll(() => temp.cleanup());

  it('serves the HELLO, pipelined GET_CHUNKs and a BITFIELD inside TLS, byte for byte and in order', async () => {
    const s = await tls();
    s.send(get(2, bigCap), get(0, bigCap), formatBitfieldRequest(bigCap), get(1, bigCap), get(7, bigCap));
    const [c2, c0, bits, c1, none] = await s.read(5);
    expectChunk(c2, 2, chunkOf(big, 2));
    expectChunk(c0, 0, chunkOf(big, 0));
    expect(bits).toEqual({ kind: 'bitfield', line: 'BITFIELD 3 4A' });
    expectChunk(c1, 1, chunkOf(big, 1));
    expect(none).toMatchObject({ kind: 'err', code: 'NO_SUCH_CHUNK' });
    expect(server.uploadedBytes).toBe(big.length);
    // STARTTLS again, inside: only the first line of a connection may ask for it
    s.send('STARTTLS');
    expect(await s.readOne()).toEqual({ kind: 'err', code: 'BAD_SYNTAX', message: 'STARTTLS is only the first line' });
  });

  it('serves a connection that opens with the TLS handshake itself as one upgraded with STARTTLS, both forms', async () => {
    const s = await direct();
    s.send(get(1, bigCap), formatBitfieldRequest(bigCap), get(2, bigCap));
    const [c1, bits, c2] = await s.read(3);
    expectChunk(c1, 1, chunkOf(big, 1));
    expect(bits).toEqual({ kind: 'bitfield', line: 'BITFIELD 3 4A' });
    expectChunk(c2, 2, chunkOf(big, 2));
    const seed = await direct('seed');
    seed.send(get(0, bigCap));
    expect((await seed.readAllUntilClosed()).equals(chunkOf(big, 0))).toBe(true);
    expect(server.uploadedBytes).toBe(chunkOf(big, 1).length + chunkOf(big, 2).length + CHUNK_SIZE);
  });

  it("tells a partial seeder's HAVE lines inside TLS, between whole replies", async () => {
    const data = randomBytes(3 * CHUNK_SIZE + 99);
    const partPath = join(dir, 'movie.bin.part');
    writeFileSync(partPath, data);
    const partial = partials.open({
      groupId: 'g1',
      userId: 'alice',
      fileName: 'movie.bin',
      fileHash: sha1(data),
      size: data.length,
      chunkCount: 4,
      partPath,
      present: [0],
    });
    const cap = issuer.issue({ fileHash: sha1(data), groupId: 'g1', seederId: 'alice' });
    const s = await tls();
    s.send(formatBitfieldRequest(cap), get(0, cap), get(3, cap));
    const [bits, c0, notHeld] = await s.read(3);
    expect(bits).toEqual({ kind: 'bitfield', line: 'BITFIELD 4 gA' });
    expectChunk(c0, 0, chunkOf(data, 0));
    expect(notHeld).toMatchObject({ kind: 'err', code: 'NOT_HELD' });
    partial.held(3);
    await s.waitFor(() => s.haves.length >= 1, 'a HAVE line');
    s.send(get(3, cap));
    expectChunk(await s.readOne(), 3, chunkOf(data, 3));
    expect(s.events).toEqual(['BITFIELD 4 gA', 'CHUNK 0', 'ERR NOT_HELD', 'HAVE 3', 'CHUNK 3']);
  });

  it('answers a seed-form GET_CHUNK inside TLS with the raw bytes, then ends', async () => {
    const s = await tls('seed');
    s.send(get(1, bigCap));
    expect((await s.readAllUntilClosed()).equals(chunkOf(big, 1))).toBe(true);
  });

  it('still serves plain connections, both forms, as before', async () => {
    const ext = await plain();
    ext.send(get(0, bigCap));
    expectChunk(await ext.readOne(), 0, chunkOf(big, 0));
    const seed = await plain('seed');
    seed.send(get(2, bigCap));
    expect((await seed.readAllUntilClosed()).equals(chunkOf(big, 2))).toBe(true);
    // a plain connection that sends STARTTLS later is told so, and goes on
    ext.send('STARTTLS', get(1, bigCap));
    const [err, c1] = await ext.read(2);
    expect(err).toMatchObject({ kind: 'err', code: 'BAD_SYNTAX' });
    expectChunk(c1, 1, chunkOf(big, 1));
  });

  it('closes without a byte a connection that sends anything after STARTTLS before the answer', async () => {
    for (const bytes of [`STARTTLS\n${HELLO_LINE}\n`, `STARTTLS\r\n${get(0, bigCap)}\n`]) {
      const raw = await dial();
      const got = collectUntilClosed(raw);
      raw.write(bytes);
      expect((await got).length).toBe(0);
    }
    expect(server.uploadedBytes).toBe(0);
  });

  it('closes a connection that stalls in the handshake by the request timeout, and frees its slot', async () => {
    await startServer({ requestTimeoutMs: 300, maxConnections: 1 });
    const raw = await dial();
    const got = collectUntilClosed(raw);
    raw.write('STARTTLS\n');
    const since = Date.now();
    // the answer, then silence from us: the server waits for a TLS ClientHello that never comes
    expect((await got).toString('latin1')).toBe(`${STARTTLS_REPLY}\n`);
    expect(Date.now() - since).toBeGreaterThanOrEqual(250);
    await eventually(() => server.connectionCount === 0, 'the slot frees up');
    // half a ClientHello is cut off the same way
    const half = await dial();
    const gotHalf = collectUntilClosed(half);
    half.write('STARTTLS\n');
    half.once('data', () => half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    expect((await gotHalf).toString('latin1')).toBe(`${STARTTLS_REPLY}\n`);
    await eventually(() => server.connectionCount === 0, 'the slot frees up again');
    // and half a ClientHello as the first bytes, with no STARTTLS: closed without a byte
    const bare = await dial();
    const gotBare = collectUntilClosed(bare);
    bare.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    expect((await gotBare).length).toBe(0);
    await eventually(() => server.connectionCount === 0, 'the slot frees up a third time');
    const s = await tls();
    s.send(get(2, bigCap));
    expectChunk(await s.readOne(), 2, chunkOf(big, 2));
  });

  it('refuses a STARTTLS beyond the connection limit with one ERR line in clear, then the close', async () => {
    await startServer({ maxConnections: 1 });
    const first = await tls();
    first.send(get(2, bigCap));
    await first.readOne();
    const raw = await dial();
    const got = collectUntilClosed(raw);
    raw.write('STARTTLS\n');
    expect((await got).toString('latin1')).toMatch(/^ERR BUSY [^\n]*\n$/);
  });

  it('drops a TLS connection with its TCP one when the server stops', async () => {
    const s = await tls();
    s.send(get(0, bigCap));
    await s.readOne();
    await server.stop();
    await s.waitClosed();
    expect(server.connectionCount).toBe(0);
  });
});
