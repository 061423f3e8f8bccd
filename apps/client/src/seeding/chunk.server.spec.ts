import { CHUNK_SIZE } from '@app/chunking';
import {
  formatBitfieldRequest,
  formatGetChunk,
  formatReply,
  HELLO_LINE,
  HELLO_REPLY,
  parseBitfieldReply,
} from '@app/protocol';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CapabilityVerifier } from './capability.verifier';
import { ChunkServer, DENIED_REPLY } from './chunk.server';
import { PartialShare, PartialShares } from './partial-shares';
import { ChunkServerListenError } from './seeding.errors';
import { ChunkServerOptions, SEEDING_OPTIONS } from './seeding.tokens';
import { ShareRegistry } from './share.registry';
import { SharedFile } from './shared-file';
import { TestCapabilityIssuer, withByteFlipped } from './testing/capability.fixtures';
import { ChunkSocket, PeerAnswer } from './testing/chunk-socket';
import { eventually, sha1, shareOf, TempDirs } from './testing/seeding.fixtures';

const get = (index: number, capability: string) => formatGetChunk({ index, capability });
const bitfield = (capability: string) => formatBitfieldRequest(capability);
const openFds = () => readdirSync('/proc/self/fd').length;

function expectChunk(answer: PeerAnswer, index: number, bytes: Buffer): void {
  expect(answer.kind === 'chunk' ? { index: answer.index, length: answer.data.length } : answer).toEqual({
    index,
    length: bytes.length,
  });
  if (answer.kind === 'chunk') expect(answer.data.equals(bytes)).toBe(true);
}

const expectErr = (answer: PeerAnswer, code: string) => expect(answer).toMatchObject({ kind: 'err', code });
/** The one refusal, word for word. */
const expectDenied = (answer: PeerAnswer) =>
  expect(answer).toEqual({ kind: 'err', code: DENIED_REPLY.code, message: DENIED_REPLY.message });

describe(ChunkServer.name, () => {
  const temp = new TempDirs();
  const sockets: ChunkSocket[] = [];
  let dir: string;
  let registry: ShareRegistry;
  let server: ChunkServer;
  let port: number;
  let changed: SharedFile[];
  /** 2 full chunks and a short third one. */
  let big: Buffer;
  let bigPath: string;
  /** What bob got from the tracker to fetch big.bin from alice. */
  let bigCap: string;
  let issuer: TestCapabilityIssuer;
  let verifier: CapabilityVerifier;
  let partials: PartialShares;

  /** A connection in the extended form (its HELLO sent, the `OK 0 p2p-share/2` taken). */
  const connect = async () => {
    const s = await ChunkSocket.open(port);
    sockets.push(s);
    return s;
  };
  /** A connection in the seed form: no HELLO, raw bytes collected. */
  const connectSeed = async (localAddress?: string) => {
    const s = await ChunkSocket.open(port, '127.0.0.1', localAddress, 'seed');
    sockets.push(s);
    return s;
  };
  const chunkOf = (data: Buffer, i: number) => data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);

  const startServer = async (options: Partial<ChunkServerOptions> = {}) => {
    await server?.stop();
    server = new ChunkServer({ host: '127.0.0.1', port: 0, ...options }, registry, verifier, partials);
    server.onShareChanged((share) => changed.push(share));
    port = (await server.start()).port;
  };

  const share = async (name: string, data: Buffer | string, groupId = 'g1') => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return registry.add(await shareOf(path, { groupId }));
  };

  beforeEach(async () => {
    dir = temp.make();
    mkdirSync(join(dir, 'shared'));
    registry = new ShareRegistry({ dataDir: join(temp.make(), 'data') });
    await registry.load();
    changed = [];
    big = randomBytes(2 * CHUNK_SIZE + 12_345);
    const bigShare = await share('shared/big.bin', big);
    bigPath = bigShare.path;
    issuer = new TestCapabilityIssuer();
    verifier = new CapabilityVerifier({ capabilitySkewMs: 60_000 });
    verifier.trust('alice', issuer.rawPublicKey);
    bigCap = issuer.for(bigShare);
    partials = new PartialShares();
    await startServer();
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server.stop();
    await partials.closeAll();
    jest.restoreAllMocks();
    temp.cleanup();
  });

  describe('serving', () => {
    it('serves every chunk byte-exact, the short last one included', async () => {
      const s = await connect();
      for (const i of [0, 1, 2]) {
        s.send(get(i, bigCap));
        expectChunk(await s.readOne(), i, chunkOf(big, i));
      }
      expect(chunkOf(big, 2)).toHaveLength(12_345);
    });

    it('answers pipelined requests in order, errors included', async () => {
      const s = await connect();
      s.send(get(2, bigCap), get(0, bigCap), 'NOPE', get(9, bigCap), get(1, bigCap), get(2, bigCap));
      const answers = await s.read(6);
      expectChunk(answers[0], 2, chunkOf(big, 2));
      expectChunk(answers[1], 0, chunkOf(big, 0));
      expectErr(answers[2], 'UNKNOWN_COMMAND');
      expectErr(answers[3], 'NO_SUCH_CHUNK');
      expectChunk(answers[4], 1, chunkOf(big, 1));
      expectChunk(answers[5], 2, chunkOf(big, 2));
    });

    it('serves many connections in parallel', async () => {
      await startServer({ maxConnectionsPerAddress: 40 });
      const clients = await Promise.all(Array.from({ length: 40 }, () => connect()));
      const results = await Promise.all(
        clients.map(async (s, n) => {
          const order = [n % 3, (n + 1) % 3, (n + 2) % 3];
          s.send(...order.map((i) => get(i, bigCap)));
          const answers = await s.read(3, 15_000);
          return answers.map(
            (a, k) => a.kind === 'chunk' && a.index === order[k] && a.data.equals(chunkOf(big, a.index)),
          );
        }),
      );
      expect(results.flat().every(Boolean)).toBe(true);
    });

    it('serves a file whose path needs quoting, and one shared in two groups, for either group', async () => {
      const spaced = await share('shared/my file.bin', 'hello world');
      const inG2 = await registry.add(await shareOf(bigPath, { groupId: 'g2' }));
      const s = await connect();
      s.send(get(0, issuer.for(spaced)), get(1, bigCap), get(2, issuer.for(inG2)));
      const [a, b, c] = await s.read(3);
      expectChunk(a, 0, Buffer.from('hello world'));
      expectChunk(b, 1, chunkOf(big, 1));
      expectChunk(c, 2, chunkOf(big, 2));
    });

    it('serves a capability that expired less than the allowed clock skew ago', async () => {
      const s = await connect();
      const share = registry.findByPath(bigPath)[0];
      s.send(get(0, issuer.for(share, { expiresAt: Math.floor(Date.now() / 1000) - 30 })));
      expectChunk(await s.readOne(), 0, chunkOf(big, 0));
    });

    it('gives the half-closing peer all its answers, then closes', async () => {
      const s = await connect();
      s.send(get(0, bigCap), get(1, bigCap), get(2, bigCap));
      s.socket.end();
      const answers = await s.read(3);
      expect(answers.map((a) => a.kind === 'chunk' && a.index)).toEqual([0, 1, 2]);
      await s.waitClosed();
    });

    it('stops serving a share as soon as it is removed', async () => {
      await registry.remove('g1', 'big.bin', 'alice');
      const s = await connect();
      s.send(get(0, bigCap));
      expectDenied(await s.readOne());
    });
  });

  describe('denying', () => {
    /** Each request the seeder must turn away, whatever it names. */
    const cases: [string, () => string][] = [
      ['the real path of a shared file', () => bigPath],
      ['/etc/passwd', () => '/etc/passwd'],
      ['a relative path', () => 'shared/big.bin'],
      ['a ../ climb', () => `${dir}/shared/../../../../etc/passwd`],
      ['an unshared file next to a shared one', () => join(dir, 'shared', 'secret.txt')],
      ['garbage in the capability alphabet', () => 'AQAAAABp_x-9'],
      ['a capability signed with another key', () => new TestCapabilityIssuer().for(registry.findByPath(bigPath)[0])],
      ['an expired capability', () => issuer.for(shareOfBig(), { expiresAt: Math.floor(Date.now() / 1000) - 61 })],
      ['a capability for another seeder', () => issuer.for(shareOfBig(), { seederId: 'carol' })],
      ['a capability for a file not shared here', () => issuer.for(shareOfBig(), { fileHash: 'b'.repeat(40) })],
      ['a capability for the file in another group', () => issuer.for(shareOfBig(), { groupId: 'g2' })],
      ['a capability with a character added', () => `${bigCap}A`],
      ['a capability cut short', () => bigCap.slice(0, -1)],
    ];
    const shareOfBig = () => registry.findByPath(bigPath)[0];

    it.each(cases)('denies %s, with the one refusal and no bytes', async (_, request) => {
      writeFileSync(join(dir, 'shared', 'secret.txt'), 'secret');
      const s = await connect();
      s.send(get(0, request()));
      expectDenied(await s.readOne());
      expect(s.bytesReceived).toBe(Buffer.byteLength(`${HELLO_REPLY}\n${formatReply(DENIED_REPLY)}`));
    });

    it.each(cases)('denies %s in the seed form with no byte and a close', async (_, request) => {
      writeFileSync(join(dir, 'shared', 'secret.txt'), 'secret');
      const s = await connectSeed();
      s.send(get(0, request()));
      expect((await s.readAllUntilClosed()).length).toBe(0);
    });

    it('denies a valid capability with any one byte changed', async () => {
      const length = Buffer.from(bigCap, 'base64url').length;
      const s = await connect();
      for (let at = 0; at < length; at++) s.send(get(0, withByteFlipped(bigCap, at)));
      const answers = await s.read(length);
      answers.forEach((a) => expectDenied(a));
      s.send(get(0, bigCap));
      expectChunk(await s.readOne(), 0, chunkOf(big, 0));
    });

    it('denies everything while logged out, and capabilities of the old key after a new one is trusted', async () => {
      const s = await connect();
      verifier.forget();
      s.send(get(0, bigCap));
      expectDenied(await s.readOne());
      const next = new TestCapabilityIssuer();
      verifier.trust('alice', next.rawPublicKey);
      s.send(get(0, bigCap), get(0, next.for(shareOfBig())));
      const [old, fresh] = await s.read(2);
      expectDenied(old);
      expectChunk(fresh, 0, chunkOf(big, 0));
    });

    it('denies a capability for alice once bob is the one logged in on this client', async () => {
      const s = await connect();
      verifier.trust('bob', issuer.rawPublicKey);
      s.send(get(0, bigCap));
      expectDenied(await s.readOne());
    });
  });

  describe('refusing', () => {
    it('refuses chunk indexes outside the file', async () => {
      const empty = await share('shared/empty.bin', '');
      const s = await connect();
      s.send(get(3, bigCap), get(999_999_999, bigCap), get(0, issuer.for(empty)), 'GET_CHUNK -1 ' + bigCap);
      const answers = await s.read(4);
      expect(answers.map((a) => a.kind === 'err' && a.code)).toEqual([
        'NO_SUCH_CHUNK',
        'NO_SUCH_CHUNK',
        'NO_SUCH_CHUNK',
        'BAD_ARGUMENTS',
      ]);
      expect(answers[0]).toMatchObject({ message: 'no chunk 3 in big.bin: chunks are 0..2' });
    });

    it('refuses a shared path swapped for a symlink to /etc/passwd, and reports the share', async () => {
      const entry = registry.findByPath(bigPath)[0];
      unlinkSync(bigPath);
      symlinkSync('/etc/passwd', bigPath);
      const s = await connect();
      s.send(get(0, bigCap), get(1, bigCap));
      const answers = await s.read(2);
      expectErr(answers[0], 'FILE_CHANGED');
      expectErr(answers[1], 'FILE_CHANGED');
      expect(changed).toEqual([entry]);
    });

    it('refuses a shared file whose folder was swapped for a symlink to /etc', async () => {
      const passwd = await share('shared/passwd', 'my own passwd notes');
      renameSync(join(dir, 'shared'), join(dir, 'moved'));
      symlinkSync('/etc', join(dir, 'shared'));
      const s = await connect();
      s.send(get(0, issuer.for(passwd)));
      expectErr(await s.readOne(), 'FILE_CHANGED');
      expect(changed).toEqual([passwd]);
    });

    it('refuses a shared file that was deleted, replaced, grown or touched', async () => {
      const names = ['deleted', 'replaced', 'grown', 'touched'];
      const entries = await Promise.all(names.map((n) => share(`shared/${n}.bin`, randomBytes(1000))));
      unlinkSync(join(dir, 'shared/deleted.bin'));
      writeFileSync(join(dir, 'new.bin'), randomBytes(1000));
      renameSync(join(dir, 'new.bin'), join(dir, 'shared/replaced.bin'));
      appendFileSync(join(dir, 'shared/grown.bin'), 'x');
      utimesSync(join(dir, 'shared/touched.bin'), new Date(), new Date(Date.now() + 60_000));

      const s = await connect();
      s.send(...entries.map((e) => get(0, issuer.for(e))));
      expect((await s.read(4)).map((a) => a.kind === 'err' && a.code)).toEqual(Array(4).fill('FILE_CHANGED'));
      expect(changed).toEqual(entries);
    });

    it('reports each changed share once however often it is asked for', async () => {
      writeFileSync(bigPath, 'shorter now');
      const s = await connect();
      s.send(...Array.from({ length: 5 }, () => get(0, bigCap)));
      await s.read(5);
      expect(changed).toHaveLength(1);
    });

    it('serves the current share of a file, and reports the stale one when asked for it', async () => {
      const old = registry.findByPath(bigPath)[0];
      appendFileSync(bigPath, 'more');
      const fresh = await registry.add(await shareOf(bigPath, { groupId: 'g2', sharedAt: old.sharedAt + 1 }));
      const s = await connect();
      s.send(get(2, issuer.for(fresh)));
      expectChunk(await s.readOne(), 2, Buffer.concat([chunkOf(big, 2), Buffer.from('more')]));
      expect(changed).toEqual([]);
      s.send(get(2, bigCap));
      expectErr(await s.readOne(), 'FILE_CHANGED');
      expect(changed).toEqual([old]);
      expect(registry.findByPath(bigPath)[0]).toBe(fresh);
    });
  });

  describe('bad input', () => {
    it('answers garbage with ERR and goes on', async () => {
      const s = await connect();
      s.write(Buffer.concat([randomBytes(300).map((b) => (b === 0x0a ? 0x20 : b)), Buffer.from('\n')]));
      s.write('\u0000\u0001\u0002\r\n');
      s.send('get_chunk 0 /x', 'GET_CHUNK', 'GET_CHUNK 0 /a /b', 'GET_CHUNK x /a', 'GET_CHUNK 0 "unterminated');
      s.send('', '   ', get(0, bigCap));
      const answers = await s.read(8);
      expect(answers.slice(0, 7).every((a) => a.kind === 'err')).toBe(true);
      expect(answers.slice(1, 7).map((a) => a.kind === 'err' && a.code)).toEqual([
        'BAD_SYNTAX',
        'UNKNOWN_COMMAND',
        'BAD_ARGUMENTS',
        'BAD_ARGUMENTS',
        'BAD_ARGUMENTS',
        'BAD_SYNTAX',
      ]);
      expectChunk(answers[7], 0, chunkOf(big, 0));
    });

    it('answers a 100 KB line with LINE_TOO_LONG once and goes on', async () => {
      const s = await connect();
      s.write(`GET_CHUNK 0 /${'a'.repeat(100 * 1024)}\n`);
      s.write(Buffer.alloc(100 * 1024, 'b'));
      s.write('\n' + get(1, bigCap) + '\n');
      const [tooLong, again, chunk] = await s.read(3);
      expect(tooLong).toMatchObject({ kind: 'err', code: 'LINE_TOO_LONG' });
      expect(again).toMatchObject({ kind: 'err', code: 'LINE_TOO_LONG' });
      expectChunk(chunk, 1, chunkOf(big, 1));
    });

    it('stays healthy and leaks no file when a peer vanishes mid-transfer', async () => {
      const fdsBefore = openFds();
      for (let round = 0; round < 5; round++) {
        const s = await connect();
        s.send(...Array.from({ length: 30 }, (_, i) => get(i % 3, bigCap)));
        await eventually(() => s.bytesReceived > 0, 'the first bytes arrive');
        s.destroy();
      }
      await eventually(() => server.connectionCount === 0, 'the server drops the vanished peers');
      await eventually(() => openFds() <= fdsBefore, 'every file and socket is closed');

      const s = await connect();
      s.send(get(2, bigCap));
      expectChunk(await s.readOne(), 2, chunkOf(big, 2));
    });
  });

  describe('seed form (no HELLO first)', () => {
    it('answers a GET_CHUNK with exactly the raw bytes of the chunk, the short last one included, then closes', async () => {
      for (const i of [0, 1, 2]) {
        const s = await connectSeed();
        s.send(get(i, bigCap));
        expect((await s.readAllUntilClosed()).equals(chunkOf(big, i))).toBe(true);
        s.destroy(); // as the seed's downloader does once it has its bytes
      }
      await eventually(() => server.connectionCount === 0, 'every slot is freed');
    });

    it('answers only the first request of a connection', async () => {
      const s = await connectSeed();
      s.send(get(1, bigCap), get(0, bigCap), get(2, bigCap));
      expect((await s.readAllUntilClosed()).equals(chunkOf(big, 1))).toBe(true);
    });

    it('serves many seed connections at once', async () => {
      const all = await Promise.all(Array.from({ length: 6 }, () => connectSeed()));
      all.forEach((s, k) => s.send(get(k % 3, bigCap)));
      const got = await Promise.all(all.map((s) => s.readAllUntilClosed()));
      got.forEach((bytes, k) => expect(bytes.equals(chunkOf(big, k % 3))).toBe(true));
    });

    it.each([
      ['an unknown command', 'NOPE 0 x'],
      ['a bad line', 'GET_CHUNK x'],
      ['an index past the end', 'GET_CHUNK 3 CAP'],
      ['a HELLO of another version', 'HELLO p2p-share/3'],
      ['a blank line', ''],
    ])('closes without a byte on %s', async (_, line) => {
      const s = await connectSeed();
      s.send(line.replace('CAP', bigCap));
      expect((await s.readAllUntilClosed()).length).toBe(0);
    });

    it('closes without a byte when the shared file changed', async () => {
      appendFileSync(bigPath, 'more');
      const s = await connectSeed();
      s.send(get(0, bigCap));
      expect((await s.readAllUntilClosed()).length).toBe(0);
      expect(changed).toHaveLength(1);
    });

    it('closes without a byte a connection that sends nothing within the request deadline', async () => {
      await startServer({ requestTimeoutMs: 200 });
      const silent = await connectSeed();
      const partial = await connectSeed();
      partial.write('GET_CHUNK 0');
      expect((await silent.readAllUntilClosed()).length).toBe(0);
      expect((await partial.readAllUntilClosed()).length).toBe(0);
    });

    it('keeps the upload cap for seed connections', async () => {
      await startServer({ uploadLimit: 2 * 1024 * 1024 });
      const [a, b] = [await connectSeed(), await connectSeed()];
      const started = Date.now();
      a.send(get(0, bigCap));
      b.send(get(1, bigCap));
      const [ga, gb] = await Promise.all([a.readAllUntilClosed(), b.readAllUntilClosed()]);
      expect(ga.equals(chunkOf(big, 0)) && gb.equals(chunkOf(big, 1))).toBe(true);
      // 1 MiB at 2 MiB/s: the second chunk waits its turn behind the first
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    });
  });

  describe('extended form (HELLO first)', () => {
    it('answers the HELLO with exactly `OK 0 p2p-share/2`, then serves pipelined requests with headers', async () => {
      const s = await connectSeed();
      s.send(HELLO_LINE);
      await eventually(() => s.raw.length >= HELLO_REPLY.length + 1, 'the HELLO is answered');
      expect(s.raw.toString()).toBe(`${HELLO_REPLY}\n`);
      s.send(get(2, bigCap));
      const header = `CHUNK 2 ${chunkOf(big, 2).length}\n`;
      await eventually(() => s.raw.length >= HELLO_REPLY.length + 1 + header.length + 12_345, 'the chunk arrives');
      expect(s.raw.equals(Buffer.concat([Buffer.from(`${HELLO_REPLY}\n${header}`), chunkOf(big, 2)]))).toBe(true);
      expect(s.isClosed).toBe(false);
    });

    it('answers a later HELLO with BAD_SYNTAX and goes on', async () => {
      const s = await connect();
      s.send(HELLO_LINE, get(0, bigCap));
      expect(await s.readOne()).toEqual({ kind: 'err', code: 'BAD_SYNTAX', message: 'HELLO is only the first line' });
      expectChunk(await s.readOne(), 0, chunkOf(big, 0));
    });
  });

  describe('connections', () => {
    it('turns away connections beyond the limit with BUSY', async () => {
      await startServer({ maxConnections: 2 });
      const [a, b] = [await connect(), await connect()];
      a.send(get(2, bigCap));
      b.send(get(2, bigCap));
      await Promise.all([a.readOne(), b.readOne()]);

      const c = await connect();
      expectErr(await c.readOne(), 'BUSY');
      await c.waitClosed();
      // in the seed form the same refusal is a close without a byte, once its first line shows the form
      const seed = await connectSeed();
      seed.send(get(2, bigCap));
      expect((await seed.readAllUntilClosed()).length).toBe(0);
      // and one that sends nothing is closed without a byte after the 1 s wait for its first line
      const mute = await connectSeed();
      const since = Date.now();
      expect((await mute.readAllUntilClosed(4000)).length).toBe(0);
      expect(Date.now() - since).toBeGreaterThanOrEqual(900);

      a.destroy();
      await eventually(() => server.connectionCount === 1, 'a slot frees up');
      const d = await connect();
      d.send(get(2, bigCap));
      expectChunk(await d.readOne(), 2, chunkOf(big, 2));
    });

    it('makes room for a newcomer by closing the oldest connection that was never served', async () => {
      await startServer({ maxConnections: 2 });
      const [idle1, idle2] = [await connect(), await connect()];
      await eventually(() => server.connectionCount === 2, 'both are in');
      const c = await connect();
      c.send(get(2, bigCap));
      expectChunk(await c.readOne(), 2, chunkOf(big, 2));
      expectErr(await idle1.readOne(), 'BUSY');
      await idle1.waitClosed();
      expect(idle2.isClosed).toBe(false);
    });

    it('closes an evicted seed-form connection without a byte', async () => {
      await startServer({ maxConnections: 1 });
      const idle = await connectSeed();
      idle.write('GET_CH');
      await eventually(() => server.connectionCount === 1, 'it is in');
      const c = await connect();
      c.send(get(2, bigCap));
      expectChunk(await c.readOne(), 2, chunkOf(big, 2));
      expect((await idle.readAllUntilClosed()).length).toBe(0);
    });

    it('closes idle connections', async () => {
      await startServer({ idleTimeoutMs: 50 });
      const s = await connect();
      s.send(get(2, bigCap));
      await s.readOne();
      expectErr(await s.readOne(), 'IDLE_TIMEOUT');
      await s.waitClosed();
      await eventually(() => server.connectionCount === 0, 'the slot is freed');
    });

    it('lets one address hold only its share of the slots, with TOO_MANY_CONNECTIONS past it', async () => {
      await startServer({ maxConnectionsPerAddress: 2 });
      const [a, b] = [await connect(), await connect()];
      a.send(get(2, bigCap));
      b.send(get(2, bigCap));
      await Promise.all([a.readOne(), b.readOne()]);

      const c = await connect();
      const refusal = await c.readOne();
      expect(refusal).toEqual({
        kind: 'err',
        code: 'TOO_MANY_CONNECTIONS',
        message: '2 connections from 127.0.0.1 already (at most 2); try later',
      });
      await c.waitClosed();
      const seed = await connectSeed();
      seed.send(get(2, bigCap));
      expect((await seed.readAllUntilClosed()).length).toBe(0);

      // another address is served meanwhile
      const other = await ChunkSocket.open(port, '127.0.0.1', '127.0.0.2');
      sockets.push(other);
      other.send(get(0, bigCap));
      expectChunk(await other.readOne(), 0, chunkOf(big, 0));
    });

    it('closes a connection that has no request served within the request deadline, errors notwithstanding', async () => {
      await startServer({ requestTimeoutMs: 300 });
      const good = await connect();
      const silent = await connect();
      const wrong = await connect();
      const started = Date.now();
      good.send(get(2, bigCap));
      expectChunk(await good.readOne(), 2, chunkOf(big, 2));
      wrong.send(get(0, join(dir, 'not-shared.bin')), 'NOPE');
      expect((await wrong.read(2)).map((a) => a.kind)).toEqual(['err', 'err']);
      for (const s of [silent, wrong]) {
        expect(await s.readOne()).toEqual({
          kind: 'err',
          code: 'IDLE_TIMEOUT',
          message: 'no request served within 0.3 s; closing',
        });
        await s.waitClosed();
      }
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);

      // the connection served in time, opened before the others, is still there past its deadline
      expect(good.isClosed).toBe(false);
      good.send(get(2, bigCap));
      expectChunk(await good.readOne(), 2, chunkOf(big, 2));
    });

    it('runs no deadline while a request waits for the upload cap', async () => {
      // 2 MB/s: each full chunk waits ~0.25 s for the cap, longer than the 100 ms idle timeout and request deadline
      await startServer({ requestTimeoutMs: 100, idleTimeoutMs: 100, uploadLimit: 2 * 1024 * 1024 });
      const [a, b] = [await connect(), await connect()];
      a.send(get(0, bigCap), get(1, bigCap), get(0, bigCap), get(1, bigCap));
      b.send(get(1, bigCap));
      const started = Date.now();
      const answers = await a.read(4);
      [0, 1, 0, 1].forEach((i, k) => expectChunk(answers[k], i, chunkOf(big, i)));
      expectChunk(await b.readOne(), 1, chunkOf(big, 1));
      expect(Date.now() - started).toBeGreaterThanOrEqual(800);
      // once nothing is asked, the idle timeout runs again
      expectErr(await a.readOne(), 'IDLE_TIMEOUT');
    });

    it('closes a peer that trickles its request line', async () => {
      await startServer({ lineTimeoutMs: 300, requestTimeoutMs: 0 });
      const slow = await connect();
      const line = `${get(2, bigCap)}\n`;
      let sent = 0;
      const trickle = setInterval(() => sent < line.length && slow.write(line[sent++]), 20);
      try {
        expectErr(await slow.readOne(), 'IDLE_TIMEOUT');
        await slow.waitClosed();
        expect(sent).toBeLessThan(line.length);
      } finally {
        clearInterval(trickle);
      }
      await eventually(() => server.connectionCount === 0, 'the slot is freed');
    });

    it('says why it cannot listen', async () => {
      const other = new ChunkServer({ host: '127.0.0.1', port }, registry, verifier);
      const failure = other.start();
      await expect(failure).rejects.toThrow(ChunkServerListenError);
      await expect(failure).rejects.toThrow(`cannot listen on 127.0.0.1:${port}: address in use`);
    });

    it('closes every connection on stop', async () => {
      const s = await connect();
      s.send(get(0, bigCap));
      await s.readOne();
      await server.stop();
      await s.waitClosed();
      expect(server.address()).toBeUndefined();
      await expect(ChunkSocket.open(port)).rejects.toThrow(/ECONNREFUSED/);
    });

    it('is wired by Nest from SEEDING_OPTIONS and the registry, and stops on shutdown', async () => {
      const moduleRef = await Test.createTestingModule({
        providers: [
          { provide: SEEDING_OPTIONS, useValue: { host: '127.0.0.1', port: 0, dataDir: join(dir, 'nest-data') } },
          ShareRegistry,
          CapabilityVerifier,
          ChunkServer,
        ],
      }).compile();
      const app = await moduleRef.init();
      const nestServer = app.get(ChunkServer);
      const { port: nestPort } = await nestServer.start();
      const s = await ChunkSocket.open(nestPort);
      sockets.push(s);
      await app.close();
      expect(nestServer.address()).toBeUndefined();
      await s.waitClosed();
    });
  });

  describe('downloads in progress (partial shares)', () => {
    /** The file being downloaded, its .part (every byte written: what is held is what `held` said) and its share. */
    let data: Buffer;
    let partPath: string;
    let partial: PartialShare;
    /** What bob got from the tracker to fetch the file from alice, a partial seeder of it. */
    let cap: string;

    /** Opens a download in progress of `chunks` chunks (the last one short) holding `present`. */
    const openPartial = (chunks: number, present: number[] = []) => {
      data = randomBytes((chunks - 1) * CHUNK_SIZE + 4321);
      partPath = join(dir, 'movie.bin.part');
      writeFileSync(partPath, data);
      partial = partials.open({
        groupId: 'g1',
        userId: 'alice',
        fileName: 'movie.bin',
        fileHash: sha1(data),
        size: data.length,
        chunkCount: chunks,
        partPath,
        present,
      });
      cap = issuer.issue({ fileHash: sha1(data), groupId: 'g1', seederId: 'alice' });
      return partial;
    };
    const bitsOf = (answer: PeerAnswer, count: number) => {
      if (answer.kind !== 'bitfield') throw new Error(`not a BITFIELD reply: ${JSON.stringify(answer)}`);
      const bits = parseBitfieldReply(answer.line, count);
      if (!bits) throw new Error(`a bad BITFIELD reply: ${answer.line}`);
      return [...bits];
    };

    it('answers BITFIELD of a full share with every bit set, in its place among the replies, and sends no HAVE', async () => {
      const s = await connect();
      s.send(get(2, bigCap), bitfield(bigCap), get(1, bigCap));
      const [first, bits, last] = await s.read(3);
      expectChunk(first, 2, chunkOf(big, 2));
      expect(bits).toEqual({ kind: 'bitfield', line: 'BITFIELD 3 4A' });
      expectChunk(last, 1, chunkOf(big, 1));
      expect(s.haves).toEqual([]);
    });

    it('answers BITFIELD of a download in progress with what it holds, then HAVE for each chunk it gains, coalesced', async () => {
      openPartial(5, [0, 3]);
      const s = await connect();
      s.send(bitfield(cap));
      expect(bitsOf(await s.readOne(), 5)).toEqual([1, 0, 0, 1, 0]);
      expect(partial.listenerCount).toBe(1);
      partial.held(1);
      partial.held(2);
      await s.waitFor(() => s.haves.length >= 1, 'a HAVE line');
      partial.held(2); // held already: nothing to tell
      partial.held(4);
      await s.waitFor(() => s.haves.length >= 2, 'a second HAVE line');
      expect(s.haves).toEqual([[1, 2], [4]]);
      expect(s.events).toEqual(['BITFIELD 5 kA', 'HAVE 1,2', 'HAVE 4']);
      // a later BITFIELD shows them too, and the HAVE lines go on once, not twice
      s.send(bitfield(cap));
      expect(bitsOf(await s.readOne(), 5)).toEqual([1, 1, 1, 1, 1]);
      expect(partial.listenerCount).toBe(1);
    });

    it('tells no chunk again in a HAVE after a BITFIELD reply that holds it', async () => {
      // a second to gather chunks into a line: chunk 1 is gained and not yet told when the BITFIELD is answered
      await startServer({ haveCoalesceMs: 1000 });
      openPartial(4);
      const s = await connect();
      s.send(bitfield(cap));
      expect(bitsOf(await s.readOne(), 4)).toEqual([0, 0, 0, 0]);
      partial.held(1);
      s.send(bitfield(cap));
      expect(bitsOf(await s.readOne(), 4)).toEqual([0, 1, 0, 0]);
      partial.held(3);
      await s.waitFor(() => s.haves.length >= 1, 'a HAVE line');
      expect(s.events).toEqual(['BITFIELD 4 AA', 'BITFIELD 4 QA', 'HAVE 3']);
    });

    it('serves the held chunks of a download in progress from its .part, and NOT_HELD at once for the others', async () => {
      openPartial(3, [1]);
      const reads = jest.spyOn(partial, 'read');
      const s = await connect();
      s.send(get(0, cap), get(2, cap), get(3, cap), get(1, cap));
      const answers = await s.read(4);
      expect(answers.slice(0, 3)).toEqual([
        { kind: 'err', code: 'NOT_HELD', message: 'chunk 0 of movie.bin not held here yet' },
        { kind: 'err', code: 'NOT_HELD', message: 'chunk 2 of movie.bin not held here yet' },
        { kind: 'err', code: 'NO_SUCH_CHUNK', message: 'no chunk 3 in movie.bin: chunks are 0..2' },
      ]);
      expectChunk(answers[3], 1, chunkOf(data, 1));
      // the chunk held was the one read; the others never touched the disk
      expect(reads.mock.calls.map(([index]) => index)).toEqual([1]);
      // counted for this file, and for no other
      await eventually(() => server.uploadedBytesOf('g1', sha1(data)) === CHUNK_SIZE, 'the bytes are counted');
      expect(server.uploadedBytesOf('g2', sha1(data))).toBe(0);

      partial.held(2);
      s.send(get(2, cap));
      expectChunk(await s.readOne(), 2, chunkOf(data, 2));
    });

    it('answers NOT_HELD for a held chunk the .part does not hold whole', async () => {
      openPartial(3, [0, 2]);
      writeFileSync(partPath, data.subarray(0, 1000)); // truncated under the download's feet
      const s = await connect();
      s.send(get(0, cap), get(2, cap));
      expect(await s.read(2)).toEqual([
        { kind: 'err', code: 'NOT_HELD', message: 'chunk 0 of movie.bin could not be read whole here' },
        { kind: 'err', code: 'NOT_HELD', message: 'chunk 2 of movie.bin could not be read whole here' },
      ]);
    });

    it('pushes HAVE lines only between whole replies while big chunks stream', async () => {
      // 4 MiB/s: the eight chunks take about a second, so chunks are gained while others are on the wire
      await startServer({ uploadLimit: 4 * 1024 * 1024 });
      openPartial(8, [0]);
      const s = await connect();
      s.send(bitfield(cap), ...Array.from({ length: 8 }, () => get(0, cap)));
      for (let i = 1; i < 8; i++) {
        await s.waitFor(() => s.bytesReceived > i * 500_000, `${i * 500_000} bytes`, 15_000);
        partial.held(i);
      }
      const answers = await s.read(9, 15_000);
      expect(bitsOf(answers[0], 8)).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
      answers.slice(1).forEach((a) => expectChunk(a, 0, chunkOf(data, 0)));
      await s.waitFor(() => s.haveIndexes.length >= 7, 'a HAVE for every chunk gained', 15_000);
      expect(s.haveIndexes).toEqual([1, 2, 3, 4, 5, 6, 7]);
      // they came after the BITFIELD reply, and some while chunks were still coming
      expect(s.events[0]).toBe('BITFIELD 8 gA');
      expect(s.events.findIndex((e) => e.startsWith('HAVE '))).toBeLessThan(s.events.lastIndexOf('CHUNK 0'));
    });

    it('serves a chunk of a .part renamed to its final name meanwhile', async () => {
      openPartial(3, [0, 1]);
      const s = await connect();
      s.send(get(0, cap));
      expectChunk(await s.readOne(), 0, chunkOf(data, 0));
      renameSync(partPath, join(dir, 'movie.bin'));
      s.send(get(1, cap));
      expectChunk(await s.readOne(), 1, chunkOf(data, 1));
    });

    it('denies BITFIELD for any capability not honoured here, with the one refusal', async () => {
      openPartial(3, [0]);
      const other = new TestCapabilityIssuer();
      const names = { fileHash: sha1(data), groupId: 'g1', seederId: 'alice' };
      const s = await connect();
      const requests = [
        partPath,
        'AQAAAABp_x-9',
        other.issue(names),
        issuer.issue({ ...names, seederId: 'carol' }),
        issuer.issue({ ...names, groupId: 'g2' }),
        issuer.issue({ ...names, fileHash: 'b'.repeat(40) }),
        issuer.issue({ ...names, expiresAt: Math.floor(Date.now() / 1000) - 61 }),
        withByteFlipped(cap, 20),
      ];
      s.send(...requests.map(bitfield));
      (await s.read(requests.length)).forEach(expectDenied);
      s.send('BITFIELD', `BITFIELD ${cap} x`);
      expect((await s.read(2)).map((a) => a.kind === 'err' && a.code)).toEqual(['BAD_ARGUMENTS', 'BAD_ARGUMENTS']);
      expect(partial.listenerCount).toBe(0);
      partial.held(1);
      s.send(bitfield(cap));
      expect(bitsOf(await s.readOne(), 3)).toEqual([1, 1, 0]);
      expect(s.haves).toEqual([]);
    });

    it('never serves a download in progress to a seed-form connection', async () => {
      openPartial(3, [0, 1, 2]);
      const asked = await connectSeed();
      asked.send(get(0, cap));
      expect((await asked.readAllUntilClosed()).length).toBe(0);
      const watching = await connectSeed();
      watching.send(bitfield(cap));
      expect((await watching.readAllUntilClosed()).length).toBe(0);
      expect(partial.listenerCount).toBe(0);
      // the same capability in the extended form is served
      const s = await connect();
      s.send(get(0, cap));
      expectChunk(await s.readOne(), 0, chunkOf(data, 0));
    });

    it('counts a BITFIELD reply as served, and a NOT_HELD answer not', async () => {
      openPartial(3, [0]);
      await startServer({ requestTimeoutMs: 300 });
      const watcher = await connect();
      const asker = await connect();
      watcher.send(bitfield(cap));
      asker.send(get(1, cap));
      expect(bitsOf(await watcher.readOne(), 3)).toEqual([1, 0, 0]);
      expectErr(await asker.readOne(), 'NOT_HELD');
      expect(await asker.readOne()).toEqual({
        kind: 'err',
        code: 'IDLE_TIMEOUT',
        message: 'no request served within 0.3 s; closing',
      });
      await asker.waitClosed();
      // the watcher, in since before, is still there and still told of chunks gained
      expect(watcher.isClosed).toBe(false);
      partial.held(2);
      await watcher.waitFor(() => watcher.haves.length === 1, 'a HAVE line');
      expect(watcher.haves).toEqual([[2]]);
      expect(server.servingConnections).toBe(1);
    });

    it('hands over to the full share when the download completes, and stops telling of chunks', async () => {
      openPartial(3, [0, 1]);
      const s = await connect();
      s.send(bitfield(cap));
      expect(bitsOf(await s.readOne(), 3)).toEqual([1, 1, 0]);
      partial.held(2);
      await s.waitFor(() => s.haves.length === 1, 'a HAVE line');
      // complete: the .part gets its name, the full share is added, then the partial one closed
      const finalPath = join(dir, 'movie.bin');
      renameSync(partPath, finalPath);
      await registry.add(await shareOf(finalPath));
      await partial.close();
      expect(partial.listenerCount).toBe(0);
      s.send(get(2, cap), bitfield(cap));
      const [chunk, bits] = await s.read(2);
      expectChunk(chunk, 2, chunkOf(data, 2));
      expect(bitsOf(bits, 3)).toEqual([1, 1, 1]);
      expect(s.haves).toEqual([[2]]);
    });

    it('denies a download once it is cancelled', async () => {
      openPartial(3, [0, 1]);
      const s = await connect();
      s.send(get(0, cap));
      expectChunk(await s.readOne(), 0, chunkOf(data, 0));
      await partial.close();
      s.send(get(0, cap), bitfield(cap));
      (await s.read(2)).forEach(expectDenied);
    });

    it('leaves no listener behind when a watching connection closes', async () => {
      openPartial(3);
      const watchers = await Promise.all([connect(), connect(), connect()]);
      for (const w of watchers) w.send(bitfield(cap));
      await Promise.all(watchers.map((w) => w.readOne()));
      expect(partial.listenerCount).toBe(3);
      for (const w of watchers) w.destroy();
      await eventually(() => partial.listenerCount === 0, 'every listener is dropped');
      partial.held(0); // tells nobody, and breaks nothing
      const s = await connect();
      s.send(get(0, cap));
      expectChunk(await s.readOne(), 0, chunkOf(data, 0));
    });
  });

  describe('upload cap', () => {
    /** 8 MiB/s: a full chunk every 62.5 ms. */
    const CAP = 8 * 1024 * 1024;

    it('shares the capped upload in turn: a connection with 8 requests pipelined does not starve one with 1', async () => {
      await startServer({ uploadLimit: CAP, maxConnectionsPerAddress: 8 });
      const [deep, shallow] = [await connect(), await connect()];
      deep.send(...Array.from({ length: 8 }, (_, k) => get(k % 2, bigCap)));
      await deep.waitFor(() => deep.arrivals.length >= 1, 'the first chunk of the deep pipeline');
      shallow.send(get(0, bigCap));
      const [answers] = await Promise.all([deep.read(8, 15_000), shallow.read(1, 15_000)]);
      answers.forEach((a, k) => expectChunk(a, k % 2, chunkOf(big, k % 2)));
      // the deep connection gets at most one more chunk out before the shallow one is served
      expect(shallow.arrivals[0]).toBeLessThan(deep.arrivals[2]);
    });

    it('alternates two connections with deep pipelines', async () => {
      await startServer({ uploadLimit: CAP });
      const [a, b] = [await connect(), await connect()];
      const requests = Array.from({ length: 8 }, () => get(0, bigCap));
      const started = Date.now();
      a.send(...requests);
      b.send(...requests);
      await Promise.all([a.read(8, 15_000), b.read(8, 15_000)]);
      // one cap for both: 16 chunks at 8 MiB/s take a second (the first goes at once)
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      const order = [...a.arrivals.map((n) => ({ n, who: 'a' })), ...b.arrivals.map((n) => ({ n, who: 'b' }))]
        .sort((x, y) => x.n - y.n)
        .map((x) => x.who);
      // in every stretch of the sequence, neither gets more than two chunks ahead of the other
      let lead = 0;
      let maxLead = 0;
      for (const who of order) {
        lead += who === 'a' ? 1 : -1;
        maxLead = Math.max(maxLead, Math.abs(lead));
      }
      expect(maxLead).toBeLessThanOrEqual(2);
    });

    it('changes at run time, for requests already waiting', async () => {
      // 16 KiB/s: the second full chunk would wait 32 s behind the first
      server.setUploadLimit(16 * 1024);
      expect(server.uploadLimit).toBe(16 * 1024);
      const s = await connect();
      s.send(get(0, bigCap), get(1, bigCap), get(0, bigCap));
      expectChunk(await s.readOne(), 0, chunkOf(big, 0));
      await eventually(() => server.connectionCount === 1, 'the connection is in');
      server.setUploadLimit(64 * 1024 * 1024); // the wait set at 16 KiB/s shrinks to a few ms
      expectChunk(await s.readOne(10_000), 1, chunkOf(big, 1));
      server.setUploadLimit(16 * 1024);
      const fast = await connect();
      fast.send(get(2, bigCap));
      server.setUploadLimit(0);
      expectChunk(await s.readOne(10_000), 0, chunkOf(big, 0));
      expectChunk(await fast.readOne(10_000), 2, chunkOf(big, 2));
      expect(server.uploadLimit).toBe(0);
    });

    it('refuses a bad limit and keeps the one it had', () => {
      server.setUploadLimit(1000);
      for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5M' as unknown as number]) {
        expect(() => server.setUploadLimit(bad)).toThrow(RangeError);
      }
      expect(server.uploadLimit).toBe(1000);
    });

    it('takes the limit of its options on start, unless one was set at run time', async () => {
      await startServer({ uploadLimit: 5000 });
      expect(server.uploadLimit).toBe(5000);
      server.setUploadLimit(7000);
      await server.stop();
      await server.start();
      expect(server.uploadLimit).toBe(7000);
    });

    it('counts the chunk bytes sent and the connections served', async () => {
      expect(server.uploadedBytes).toBe(0);
      const [a, b, idle] = [await connect(), await connect(), await connect()];
      a.send(get(0, bigCap), get(2, bigCap), 'NOPE');
      b.send(get(2, bigCap));
      await Promise.all([a.read(3), b.read(1)]);
      await eventually(() => server.uploadedBytes === CHUNK_SIZE + 2 * 12_345, 'the bytes are counted');
      // the same bytes, per file: all of big.bin in g1, nothing for the same file in another group
      expect(server.uploadedBytesOf('g1', sha1(big))).toBe(CHUNK_SIZE + 2 * 12_345);
      expect(server.uploadedBytesOf('g2', sha1(big))).toBe(0);
      expect(server.connectionCount).toBe(3);
      expect(server.servingConnections).toBe(2);
      a.destroy();
      await eventually(() => server.servingConnections === 1, 'the closed one no longer counts');
      expect(idle.isClosed).toBe(false);
    });
  });
});
