import { Reply } from '@app/protocol';
import { acceptTls, Identity, loadOrCreateIdentity, serverContext, sniffStartTls, startTlsClient } from '@app/tls';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, Server, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { Proc, RawConn, removeDir, startTracker, trackerNetwork } from './support/processes';
import { eventually, must, stateDigest, throwawayIdentity, tlsConnection } from './support/sync';

const code = (r: Reply) => (r.ok ? 'OK' : r.code);
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Runs `work` and returns how long it took, in ms. */
async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await work();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, value };
}

/**
 * A process listening where a tracker should be, without the network key: records every line, answers as told.
 * With an identity of its own it takes STARTTLS and records the lines sent inside TLS; without one it speaks plain.
 */
class FakeTracker {
  readonly lines: string[] = [];
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  constructor(answer?: (line: string) => string | undefined, identity?: Identity) {
    this.server = createServer((socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      if (!identity) return this.serve(socket, answer);
      void sniffStartTls(socket).then(async (first) => {
        if (first.kind !== 'starttls') return socket.destroy();
        const secure = await acceptTls(socket, { context: serverContext(identity), timeoutMs: 5000 }).catch(
          () => undefined,
        );
        secure?.on('error', () => undefined);
        if (secure) this.serve(secure, answer);
      });
    });
  }

  private serve(socket: Socket, answer?: (line: string) => string | undefined): void {
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
 * A TCP relay between tracker 1 (dialing) and tracker 2, as an attacker on the path: it sees every byte either
 * side sends, and can inject bytes towards either side, alter the next chunk tracker 1 sends, or swallow it.
 */
class MeddlingProxy {
  /** What tracker 1 sent through the relay, and what tracker 2 answered. */
  private readonly up: Buffer[] = [];
  private readonly down: Buffer[] = [];
  /** Applied to the next chunk from tracker 1: returns what goes on to tracker 2 (undefined: nothing). */
  meddle: ((chunk: Buffer, client: Socket) => Buffer | undefined) | undefined;
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

  get sent(): Buffer {
    return Buffer.concat(this.up);
  }

  get answered(): Buffer {
    return Buffer.concat(this.down);
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
    upstream.on('data', (chunk: Buffer) => {
      this.down.push(chunk);
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      this.up.push(chunk);
      const meddle = this.meddle;
      this.meddle = undefined;
      const onward = meddle ? meddle(chunk, client) : chunk;
      if (onward) upstream.write(onward);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/**
 * A relay that terminates TLS on both sides, each time with its own identity: tracker 1 dials it (through
 * --peer-address) and it dials tracker 2, then it passes every line on, both ways, and records them.
 */
class TlsRelay {
  readonly fromDialer: string[] = [];
  readonly fromListener: string[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  private constructor(
    private readonly targetPort: number,
    private readonly identity: Identity,
  ) {
    this.server = createServer((client) => void this.relay(client).catch(() => client.destroy()));
  }

  static async start(targetPort: number, identity: Identity): Promise<TlsRelay> {
    const relay = new TlsRelay(targetPort, identity);
    await new Promise<void>((r) => relay.server.listen(0, '127.0.0.3', r));
    return relay;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  private async relay(client: Socket): Promise<void> {
    this.track(client);
    if ((await sniffStartTls(client)).kind !== 'starttls') return void client.destroy();
    const down = await acceptTls(client, { context: serverContext(this.identity), timeoutMs: 5000 });
    const raw = connect({ port: this.targetPort, host: '127.0.0.1', localAddress: '127.0.0.3' });
    this.track(raw);
    await new Promise((r) => raw.once('connect', r));
    const up = await startTlsClient(raw, {
      peer: 'tracker 2',
      timeoutMs: 5000,
      identity: this.identity,
      verify: () => {},
    });
    for (const [from, to, lines] of [
      [down, up, this.fromDialer],
      [up, down, this.fromListener],
    ] as [TLSSocket, TLSSocket, string[]][]) {
      this.track(from);
      let buffer = '';
      from.setEncoding('utf8').on('data', (text: string) => {
        buffer += text;
        const parts = buffer.split('\n');
        buffer = parts.pop()!;
        lines.push(...parts);
        to.write(parts.map((l) => `${l}\n`).join(''));
      });
      from.on('close', () => to.destroy());
    }
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
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

  it('(a) a keyless process on a peer tracker’s address gets nothing but a hello inside TLS, and nothing it says is applied', async () => {
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
    }, throwawayIdentity());
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

    // tracker 1 keeps trying the fake (no pin: it takes its certificate), and each time stops at the fake's proof
    // (wait until it tried twice, or, as a tracker that trusted the fake would, went on past the hello)
    await eventually(
      () => Promise.resolve(fake.connections >= 2 || fake.lines.length >= 3),
      10_000,
      'a second try at the fake',
    );
    expect(fake.lines.length).toBeGreaterThanOrEqual(1);
    for (const line of fake.lines) expect(line).toMatch(/^123456789 sync_hello 1 [0-9a-f]{64}$/);
    expect(output(t1)).toMatch(/no link with tracker 2 .*wrong proof: the peer does not hold the network key/);

    // the same attacker also dials tracker 1: in plain text its hello is refused outright
    const mallory = await attackerConn(net.ports[0], '127.0.0.2');
    closers.push(() => Promise.resolve(mallory.destroy()));
    mallory.write(`123456789 sync_hello 2 ${hex(32)}\n`);
    expect(await linesAtLeast(mallory, 1)).toEqual(['ERR FORBIDDEN sync links need TLS: send STARTTLS first']);
    // inside TLS it gets a challenge, and cannot answer it; its forged session is not applied
    const inside = await tlsConnection(net.ports[0]);
    closers.push(() => Promise.resolve(inside.close()));
    const challenge = await inside.request(`123456789 sync_hello 2 ${hex(32)}`);
    expect(challenge.ok && challenge.message).toBe('prove it');
    const refused = await Promise.all([
      inside.request(`123456789 sync_auth ${hex(32)}`),
      inside.request(`123456789 ${forgedOp(1)}`),
      inside.request(`123456789 ${forgedOp(2)} ~${hex(32)}`),
    ]);
    expect(refused.map((r) => (r.ok ? 'OK' : `${r.code} ${r.message}`))).toEqual([
      expect.stringMatching(/^FORBIDDEN wrong proof/),
      expect.stringMatching(/^FORBIDDEN only a tracker/),
      expect.stringMatching(/^FORBIDDEN only a tracker/),
    ]);
    expect(code(await bob.request(`resume ${forged}`))).toBe('UNKNOWN_SESSION');
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
    // the silent peer is dropped after the handshake deadline and tried again; it was asked for TLS only
    await eventually(() => Promise.resolve(silent.connections >= 2), 15_000, 'a second try at the silent peer');
    expect(output(t1)).toMatch(/no link with tracker 2 .*no handshake within 3000 ms/);
    expect(silent.lines.every((l) => l === 'STARTTLS')).toBe(true);
  });

  it('(c) an on-path attacker sees only STARTTLS in clear; what it injects, alters or forges ends the link, which comes back with nothing forged', async () => {
    const env = await network();
    const proxy = await MeddlingProxy.start(env.net.ports[1]);
    closers.push(() => proxy.close());
    const t1 = await env.start(1, ['--peer-address', `2=127.0.0.3:${proxy.port}`]);
    await env.start(2);
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
    const groupsOn = async (conn: RawConn): Promise<string> => must(await conn.request('list_groups')).join('\n');
    const lost = () => (output(t1).match(/lost tracker 2/g) ?? []).length;
    /** Runs `attack`, then waits for the link to drop and come back. */
    const relinked = async (what: string, attack: () => Promise<unknown>) => {
      const [lostBefore, linksBefore] = [lost(), links(t1)];
      await attack();
      await eventually(() => Promise.resolve(lost() > lostBefore), 10_000, `${what}: the link dropped`);
      await eventually(() => Promise.resolve(links(t1) > linksBefore), 10_000, `${what}: the link back up`);
    };

    // the relay saw the link open and changes cross it: nothing but the STARTTLS line in clear
    expect(links(t1)).toBeGreaterThanOrEqual(1);
    expect(proxy.sent.subarray(0, 9).toString('latin1')).toBe('STARTTLS\n');
    expect(proxy.answered.subarray(0, 13).toString('latin1')).toBe('OK 0 STARTTLS');
    for (const text of ['sync_hello', 'sync_auth', 'create_group', 'before', 'alice'])
      expect(proxy.sent.includes(text)).toBe(false);
    for (const text of ['prove it', 'welcome', 'bob']) expect(proxy.answered.includes(text)).toBe(false);

    // an injected op line, in clear inside the TLS stream, breaks it: the link drops and comes back
    await relinked('injected', () =>
      Promise.resolve(proxy.inject(`123456789 create_group forged alice 1/900/900/${Date.now()}/-\n`)),
    );

    // one byte altered in the record that carries the next change: the same, and the change still arrives once
    await relinked('altered', async () => {
      proxy.meddle = (chunk) => {
        const altered = Buffer.from(chunk);
        altered[altered.length - 1] ^= 0x01;
        return altered;
      };
      must(await a.request('create_group real'));
    });

    // a forged acknowledgement of the next change (swallowed on the way) does not count: it is sent again
    await relinked('forged ack', async () => {
      proxy.meddle = (_chunk, client) => {
        client.write(`OK 0 ~${hex(32)} applied\n`);
        return undefined;
      };
      must(await a.request('create_group acked'));
    });

    // a legitimate client of tracker 1 is answered within a second meanwhile
    const write = await timed(() => a.request('create_group after'));
    expect(code(write.value)).toBe('OK');
    expect(write.ms).toBeLessThan(1000);
    await converged();
    const groups = await groupsOn(b);
    for (const g of ['before', 'real', 'acked', 'after']) expect(groups).toContain(`${g} owner=alice`);
    expect(groups).not.toContain('forged');
  });

  it('(d) links trackers whose certificates tracker_info.txt pins, and no tracker whose pinned fingerprint is wrong', async () => {
    const { net, start, open } = await network();
    // the identities the trackers will find in their data directories (made there on first start otherwise)
    const ids = [1, 2].map((n) => loadOrCreateIdentity(join(net.dir, `data-${n}`), `p2p-share tracker ${n}`));
    const wrong = throwawayIdentity().fingerprint;
    const pin = (pins: string[]) =>
      writeFileSync(net.infoFile, net.ports.map((p, i) => `127.0.0.1:${p} ${pins[i]}\n`).join(''));

    // tracker 2 pinned wrong: tracker 1 refuses its certificate, and tracker 1 refuses tracker 2's hello
    pin([ids[0].fingerprint, wrong]);
    const t1 = await start(1);
    const t2 = await start(2);
    const a = await open(1);
    must(await a.request('create_user alice pw'));
    const refusals = () => (output(t1).match(/no link with tracker 2/g) ?? []).length;
    const seen = refusals();
    await eventually(
      () => Promise.resolve(refusals() > seen && /no link with tracker 1 /.test(output(t2))),
      15_000,
      'both trackers refusing the other after the change',
    );
    expect(output(t1)).toContain(
      `presented the certificate ${ids[1].fingerprint}, not ${wrong} that tracker_info.txt pins`,
    );
    expect(output(t2)).toMatch(
      /no link with tracker 1 .*hello refused: FORBIDDEN the certificate of tracker 2 is not the one tracker_info.txt pins/,
    );
    expect(links(t1)).toBe(0);
    expect(output(t2)).not.toMatch(/linked with tracker 1/);
    // nothing replicated: tracker 2 does not know alice
    const b = await open(2);
    expect(code(await b.request('login alice pw'))).not.toBe('OK');

    // the right pins: the trackers link and alice reaches tracker 2
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    conns.splice(0).forEach((c) => c.close());
    pin(ids.map((id) => id.fingerprint));
    const t1b = await start(1);
    await start(2);
    await eventually(() => Promise.resolve(links(t1b) >= 1), 15_000, 'tracker 1 linked with tracker 2');
    const b2 = await open(2);
    await eventually(async () => code(await b2.request('login alice pw')) === 'OK', 15_000, 'alice on tracker 2');
  });

  it('(e) a relay that terminates TLS on both sides and passes the lines on cannot complete the handshake', async () => {
    const env = await network();
    const relay = await TlsRelay.start(env.net.ports[1], throwawayIdentity());
    closers.push(() => relay.close());
    const t1 = await env.start(1, ['--peer-address', `2=127.0.0.3:${relay.port}`]);
    await env.start(2);
    await eventually(
      () =>
        Promise.resolve(
          /no link with tracker 2 .*wrong proof: the peer does not hold the network key/.test(output(t1)),
        ),
      15_000,
      'tracker 1 refusing the relayed proof',
    );
    // tracker 2 did answer the relayed hello with its proof, bound to the relay's session with it, not tracker 1's
    expect(relay.fromListener[0]).toBe('OK 2 prove it');
    expect(relay.fromDialer.length).toBeGreaterThanOrEqual(1);
    for (const line of relay.fromDialer) expect(line).toMatch(/^123456789 sync_hello 1 [0-9a-f]{64}$/);
    expect(links(t1)).toBe(0);
  });
});
