import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { SeedPeerConnection } from './seed-peer.connection';
import { FakeSeeder, unusedPort } from './testing/fake-seeder.server';

const CHUNK = 64 * 1024;

describe(SeedPeerConnection.name, () => {
  const data = randomBytes(3 * CHUNK + 1000);
  const chunkOf = (i: number) => data.subarray(i * CHUNK, (i + 1) * CHUNK);
  const started: FakeSeeder[] = [];
  let link: SeedPeerConnection;

  const seedSeeder = async (options: ConstructorParameters<typeof FakeSeeder>[1] = {}) => {
    const s = await new FakeSeeder(data, { form: 'seed', chunkSize: CHUNK, ...options }).start();
    started.push(s);
    return s;
  };

  beforeEach(() => {
    link = new SeedPeerConnection({ pool: new ChunkBufferPool(CHUNK, 8) });
  });

  afterEach(async () => {
    link.close();
    await Promise.all(started.splice(0).map((s) => s.stop()));
  });

  it('fetches each chunk on its own connection: the request line alone, raw bytes back, no HELLO', async () => {
    const s = await seedSeeder();
    await expect(link.connect('127.0.0.1', s.port)).resolves.toBe('seed');
    const got = await Promise.all([0, 1, 2, 3].map((i) => link.fetch(i, s.capability, chunkOf(i).length)));
    got.forEach((g, i) => expect(g.equals(chunkOf(i))).toBe(true));
    expect(s.connections).toBe(4);
    expect(s.hellos).toBe(0);
    expect(s.requests.map((r) => r.capability)).toEqual(Array(4).fill(s.capability));
    expect(link.outstanding).toBe(0);
  });

  it('sends the item as given (a seed seeder’s file path)', async () => {
    const s = await seedSeeder({ acceptAny: true });
    await link.connect('127.0.0.1', s.port);
    await link.fetch(1, '/home/sam/file.bin', CHUNK);
    expect(s.requests[0]).toMatchObject({ index: 1, capability: '/home/sam/file.bin' });
  });

  it('fails the chunk when the seeder closes without a byte (the seed form’s refusal)', async () => {
    const s = await seedSeeder();
    await link.connect('127.0.0.1', s.port);
    await expect(link.fetch(0, 'not-the-capability', CHUNK)).rejects.toMatchObject({
      kind: 'failed',
      message: `127.0.0.1:${s.port} closed the connection without sending chunk 0`,
    });
  });

  it('fails the chunk when the seeder vanishes mid-chunk, and gives its buffer back', async () => {
    const pool = new ChunkBufferPool(CHUNK, 1);
    link = new SeedPeerConnection({ pool });
    const s = await seedSeeder({ decide: (r) => (r.n === 1 ? { kind: 'cut', bytes: 1000 } : undefined) });
    await link.connect('127.0.0.1', s.port);
    await expect(link.fetch(0, s.capability, CHUNK)).rejects.toMatchObject({
      kind: 'failed',
      message: /closed the connection after \d+ of 65536 bytes of chunk 0/,
    });
    expect(pool.freeCount).toBe(1);
    expect((await link.fetch(0, s.capability, CHUNK)).equals(chunkOf(0))).toBe(true);
  });

  it('fails the chunk when the seeder sends nothing for the inactivity timeout', async () => {
    const s = await seedSeeder({ decide: () => ({ kind: 'stall' }) });
    await link.connect('127.0.0.1', s.port, { inactivityTimeoutMs: 150 });
    await expect(link.fetch(2, s.capability, CHUNK)).rejects.toMatchObject({
      kind: 'failed',
      message: /sent nothing for 150 ms of chunk 2/,
    });
    await s.allClosed();
  });

  it('reads exactly the chunk’s length and closes, whatever follows', async () => {
    const s = await seedSeeder({
      decide: () => ({ kind: 'raw', bytes: Buffer.concat([chunkOf(0), randomBytes(500)]) }),
    });
    await link.connect('127.0.0.1', s.port);
    expect((await link.fetch(0, s.capability, CHUNK)).equals(chunkOf(0))).toBe(true);
  });

  it('reports a seeder it cannot reach as a connect error', async () => {
    const port = await unusedPort();
    await link.connect('127.0.0.1', port);
    await expect(link.fetch(0, 'x', CHUNK)).rejects.toMatchObject({
      kind: 'connect',
      message: new RegExp(`cannot connect to 127.0.0.1:${port}: .*ECONNREFUSED`),
    });
  });

  it('fails every fetch under way when closed, and closes their connections', async () => {
    const s = await seedSeeder({ decide: () => ({ kind: 'stall' }) });
    await link.connect('127.0.0.1', s.port);
    const fetches = [0, 1].map((i) => link.fetch(i, s.capability, CHUNK));
    await s.receivedRequests(2);
    link.close();
    for (const f of fetches) await expect(f).rejects.toMatchObject({ kind: 'closed' });
    await s.allClosed();
    await expect(link.fetch(0, s.capability, CHUNK)).rejects.toMatchObject({ kind: 'closed' });
  });

  it('never sends a HELLO even to a seeder of ours', async () => {
    const lines: string[] = [];
    const server = net.createServer((socket) => {
      socket.once('data', (b: Buffer) => {
        lines.push(b.toString());
        socket.end(chunkOf(0));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await link.connect('127.0.0.1', (server.address() as net.AddressInfo).port);
      expect((await link.fetch(0, 'cap', CHUNK)).equals(chunkOf(0))).toBe(true);
      expect(lines).toEqual(['GET_CHUNK 0 cap\n']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
