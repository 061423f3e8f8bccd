import { Reply } from '@app/protocol';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connect, createServer, Server, Socket } from 'node:net';
import { Proc, RawConn, removeDir, startTracker, trackerNetwork } from './support/processes';
import { eventually, must, stateDigest } from './support/sync';

const code = (r: Reply) => (r.ok ? 'OK' : r.code);
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Runs `work` and returns how long it took, in ms. */
async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await work();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, value };
}

/** A process listening where a tracker should be, without the network key: records every line, answers as told. */
class FakeTracker {
  readonly lines: string[] = [];
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  constructor(answer?: (line: string) => string | undefined) {
    this.server = createServer((socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      let buffer = '';
      socket.setEncoding('utf8').on('data', (text: string) => {
        buffer += text;
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const line of lines) {
          this.lines.push(line);
          const reply = answer?.(line);
          if (reply !== undefined) socket.write(reply);
        }
      });
    });
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/**
 * A TCP relay between tracker 1 (dialing) and tracker 2 that sees every line
 * tracker 1 sends; `meddle` may change a line, drop it (undefined), or answer
 * it itself (the relay then writes that answer back to tracker 1).
 */
class MeddlingProxy {
  /** Lines tracker 1 sent through the relay, as sent. */
  readonly sent: string[] = [];
  meddle: ((line: string) => { up?: string; down?: string } | undefined) | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  private constructor(private readonly targetPort: number) {
    this.server = createServer((client) => this.relay(client));
  }

  static async start(targetPort: number): Promise<MeddlingProxy> {
    const proxy = new MeddlingProxy(targetPort);
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.3', r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Writes raw bytes towards tracker 2 on every open relay (an injected line). */
  inject(text: string): void {
    for (const s of this.sockets) if ((s as Socket & { upstream?: boolean }).upstream) s.write(text);
  }

  private relay(client: Socket): void {
    const upstream = connect({ port: this.targetPort, host: '127.0.0.1', localAddress: '127.0.0.3' });
    (upstream as Socket & { upstream?: boolean }).upstream = true;
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    upstream.pipe(client);
    let buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let at = buffer.indexOf(0x0a); at >= 0; at = buffer.indexOf(0x0a)) {
        const line = buffer.subarray(0, at).toString('utf8');
        buffer = buffer.subarray(at + 1);
        this.sent.push(line);
        const change = this.meddle?.(line);
        if (!change) upstream.write(`${line}\n`);
        else {
          if (change.up !== undefined) upstream.write(change.up);
          if (change.down !== undefined) client.write(change.down);
        }
      }
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A raw connection from another loopback address, as an attacker on the network would open. */
function attackerConn(port: number, localAddress: string): Promise<Socket & { lines: string[] }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress }) as Socket & { lines: string[] };
    s.lines = [];
    let buffer = '';
    s.setEncoding('utf8').on('data', (text: string) => {
      buffer += text;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      s.lines.push(...lines);
    });
    s.once('error', reject);
    s.once('connect', () => resolve(s));
  });
}

async function linesAtLeast(s: { lines: string[] }, n: number, timeoutMs = 5000): Promise<string[]> {
  await eventually(() => Promise.resolve(s.lines.length >= n), timeoutMs, `${n} lines`);
  return s.lines;
}

const output = (p: Proc) => p.stdout + p.stderr;
/** How many times tracker 1 linked with tracker 2 so far. */
const links = (p: Proc) => (output(p).match(/linked with tracker 2/g) ?? []).length;

/** The sync link between trackers as an attacker on the network sees it. */
describe('sync link security', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const conns: RawConn[] = [];
  const closers: (() => Promise<unknown>)[] = [];

  async function network() {
    const net = await trackerNetwork(2);
    dirs.push(net.dir);
    const keyFile = net.infoFile.replace(/\.txt$/, '.key');
    const start = async (n: number, extra: string[] = []) => {
      const p = startTracker(net.infoFile, n, join(net.dir, `data-${n}`), extra);
      procs.push(p);
      await p.waitFor(/listening on/, 15_000);
      return p;
    };
    const open = async (n: number) => {
      const c = await RawConn.open(net.ports[n - 1]);
      conns.push(c);
      return c;
    };
    return { net, keyFile, start, open };
  }

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    for (const close of closers.splice(0)) await close();
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    dirs.splice(0).forEach(removeDir);
  });

  it('(a) a keyless process on a peer tracker’s address gets nothing but a hello, and nothing it says is applied', async () => {
    const { net, start, open } = await network();
    const forged = hex(32);
    const forgedOp = (seq: number) =>
      `session_open ${createHash('sha256').update(forged).digest('hex')} alice 2/${seq}/${seq}/${Date.now()}/-`;
    // answers as if it held the key: a challenge, a welcome, a forged session in every fetch, an ack for every push
    const fake = new FakeTracker((line) => {
      if (line.includes(' sync_hello ')) return `OK 2 prove it\n${hex(32)}\n${hex(32)}\n`;
      if (line.includes(' sync_auth ')) return `OK 1 ~${hex(32)} welcome, tracker 1\n-\n`;
      if (line.includes(' sync_fetch ')) return `OK 1 ~${hex(32)} 1 changes\n${forgedOp(1)}\n`;
      return `OK 0 ~${hex(32)} applied\n`;
    });
    await fake.listen(net.ports[1]);
    closers.push(() => fake.close());

    const t1 = await start(1);
    const alice = await open(1);
    must(await alice.request('create_user alice pw'));
    must(await alice.request('login alice pw'));
    const write = await timed(() => alice.request('create_group team'));
    expect(code(write.value)).toBe('OK');
    expect(write.ms).toBeLessThan(1000);

    // a legitimate client is answered at once throughout, and the forged session does not resume
    const bob = await open(1);
    const answer = await timed(() => bob.request(`resume ${forged}`));
    expect(code(answer.value)).toBe('UNKNOWN_SESSION');
    expect(answer.ms).toBeLessThan(1000);

    // tracker 1 keeps trying the fake, and each time stops at the fake's proof
    // (wait until it tried twice, or, as a tracker that trusted the fake would, went on past the hello)
    await eventually(
      () => Promise.resolve(fake.connections >= 2 || fake.lines.length >= 3),
      10_000,
      'a second try at the fake',
    );
    expect(fake.lines.length).toBeGreaterThanOrEqual(2);
    for (const line of fake.lines) expect(line).toMatch(/^123456789 sync_hello 1 [0-9a-f]{64}$/);
    expect(output(t1)).toMatch(/no link with tracker 2 .*wrong proof: the peer does not hold the network key/);

    // the same attacker also dials tracker 1 and pushes the forged session
    const mallory = await attackerConn(net.ports[0], '127.0.0.2');
    closers.push(() => Promise.resolve(mallory.destroy()));
    mallory.write(`123456789 sync_hello 2 ${hex(32)}\n`);
    const [head] = await linesAtLeast(mallory, 3);
    expect(head).toBe('OK 2 prove it');
    mallory.write(`123456789 sync_auth ${hex(32)}\n`);
    mallory.write(`123456789 ${forgedOp(1)}\n`);
    mallory.write(`123456789 ${forgedOp(2)} ~${hex(32)}\n`);
    const refused = await linesAtLeast(mallory, 6);
    expect(refused.slice(3)).toEqual([
      expect.stringMatching(/^ERR FORBIDDEN wrong proof/),
      expect.stringMatching(/^ERR FORBIDDEN only a tracker/),
      expect.stringMatching(/^ERR FORBIDDEN only a tracker/),
    ]);
  });

  it('(b) a peer that accepts and never answers holds neither start-up nor client writes', async () => {
    const { net, start, open } = await network();
    const silent = new FakeTracker();
    await silent.listen(net.ports[1]);
    closers.push(() => silent.close());

    const t1 = await start(1);
    // start-up: clients are held until catch-up is over; the silent peer must not stretch it to the 4 s limit
    const first = await open(1);
    const held = await timed(() => first.request('create_user alice pw'));
    expect(code(held.value)).toBe('OK');
    expect(held.ms).toBeLessThan(2500);
    expect(output(t1)).not.toMatch(/catch-up took over/);

    must(await first.request('login alice pw'));
    // a write waits only for linked peers: before, it waited 2 s for the silent one
    for (const g of ['g1', 'g2', 'g3']) {
      const write = await timed(() => first.request(`create_group ${g}`));
      expect(code(write.value)).toBe('OK');
      expect(write.ms).toBeLessThan(1000);
    }
    // the silent peer is dropped after the handshake deadline and tried again
    await eventually(() => Promise.resolve(silent.connections >= 2), 15_000, 'a second try at the silent peer');
    expect(output(t1)).toMatch(/no link with tracker 2 .*no handshake within 3000 ms/);
    expect(silent.lines.every((l) => /^123456789 sync_hello 1 [0-9a-f]{64}$/.test(l))).toBe(true);
  });

  describe('(c) an on-path attacker between tracker 1 and tracker 2', () => {
    async function linked() {
      const env = await network();
      const proxy = await MeddlingProxy.start(env.net.ports[1]);
      closers.push(() => proxy.close());
      const t1 = await env.start(1, ['--peer-address', `2=127.0.0.3:${proxy.port}`]);
      const t2 = await env.start(2);
      const a = await env.open(1);
      must(await a.request('create_user alice pw'));
      must(await a.request('login alice pw'));
      must(await a.request('create_group before'));
      const digestOf = (n: number) => stateDigest(env.net.ports[n - 1], env.keyFile, 3 - n, n);
      const converged = () =>
        eventually(async () => (await digestOf(1)) === (await digestOf(2)), 20_000, 'trackers agreeing');
      const b = await env.open(2);
      must(await b.request('create_user bob pw'));
      must(await b.request('login bob pw'));
      await converged();
      return { ...env, proxy, t1, t2, a, b, converged };
    }

    /** What tracker 2 answers a client that looks for `group` (its owner line, or nothing). */
    const groupsOn = async (conn: RawConn): Promise<string> => must(await conn.request('list_groups')).join('\n');

    it('refuses injected op lines, sealed or not, and the link recovers', async () => {
      const { proxy, t1, t2, a, b, converged } = await linked();
      const before = (output(t2).match(/closing the link from tracker 1/g) ?? []).length;
      proxy.inject(`123456789 create_group forged alice 1/900/900/${Date.now()}/-\n`);
      await eventually(
        () => Promise.resolve((output(t2).match(/closing the link from tracker 1/g) ?? []).length > before),
        10_000,
        'tracker 2 closing the link',
      );
      expect(output(t2)).toMatch(/closing the link from tracker 1 .*carries no MAC/);
      await converged();
      await eventually(() => Promise.resolve(links(t1) >= 2), 10_000, 'the link back up');
      proxy.inject(`123456789 create_group forged2 alice 1/901/901/${Date.now()}/- ~${hex(32)}\n`);
      await eventually(() => Promise.resolve(/bad MAC/.test(output(t2))), 10_000, 'a bad MAC refused');
      // a legitimate client of tracker 1 is answered within a second meanwhile
      const write = await timed(() => a.request('create_group after'));
      expect(code(write.value)).toBe('OK');
      expect(write.ms).toBeLessThan(1000);
      await converged();
      const groups = await groupsOn(b);
      expect(groups).toContain('after owner=alice');
      expect(groups).not.toContain('forged');
    });

    it('refuses a replayed line and an altered byte; what was sent for real arrives once the link is back', async () => {
      const { proxy, t2, a, b, converged } = await linked();
      const captured = proxy.sent.filter((l) => / create_group before /.test(l)).pop();
      expect(captured).toMatch(/ ~[0-9a-f]{64}$/);
      // replay: the captured line again, on the live link (its counter is long past)
      proxy.inject(`${captured}\n`);
      await eventually(() => Promise.resolve(/bad MAC/.test(output(t2))), 10_000, 'the replay refused');
      await converged();

      // alter one byte of the next change tracker 1 sends: create_group real becomes create_group reaL
      let altered = 0;
      proxy.meddle = (line) => {
        if (altered > 0 || !line.includes(' create_group real ')) return undefined;
        altered++;
        return { up: `${line.replace(' create_group real ', ' create_group reaL ')}\n` };
      };
      must(await a.request('create_group real'));
      await eventually(() => Promise.resolve(altered === 1), 10_000, 'the change altered on the way');
      await converged();
      const groups = await groupsOn(b);
      expect(groups).toContain('real owner=alice');
      expect(groups).not.toContain('reaL');
    });

    it('a forged acknowledgement does not count: tracker 1 drops the link and sends the change again', async () => {
      const { proxy, t1, a, b, converged } = await linked();
      let swallowed = 0;
      proxy.meddle = (line) => {
        if (swallowed > 0 || !line.includes(' create_group acked ')) return undefined;
        swallowed++;
        return { down: `OK 0 ~${hex(32)} applied\n` }; // tracker 2 never sees it
      };
      must(await a.request('create_group acked'));
      expect(swallowed).toBe(1);
      await eventually(() => Promise.resolve(/lost tracker 2: .*bad MAC/.test(output(t1))), 10_000, 'the forged ack');
      await converged();
      expect(await groupsOn(b)).toContain('acked owner=alice');
    });
  });
});
