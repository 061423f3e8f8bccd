import { FrameDecoder, HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { mkdirSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  formGroup,
  freePort,
  Proc,
  removeDir,
  startClient,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

const MB = 1024 * 1024;
/** The seeder's deadlines, shortened from 5 s so that the test sees them pass (caps stay at their defaults). */
const REQUEST_TIMEOUT_MS = 2_000;
const LINE_TIMEOUT_MS = 2_000;
const PER_ADDRESS = 8; // the default --max-peer-conns-per-ip
/** A legitimate peer must be answered this fast while the attack runs. */
const ANSWER_WITHIN_MS = 1_000;

interface AttackSocket {
  readonly address: string;
  readonly openedAt: number;
  /** The first line the seeder sent, if any. */
  line?: string;
  closedAt?: number;
}

/**
 * Many connections to a seeder from a few local addresses (127.0.0.2, 127.0.0.3 ...), either silent or trickling a
 * request line one byte at a time. A connection the seeder closes after letting it in is opened again at once, so
 * the attack keeps every slot it can get for as long as it runs.
 */
class Attack {
  readonly sockets: AttackSocket[] = [];
  private readonly open = new Set<Socket>();
  private trickle: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Most connections this test process had open at once (its own file descriptors). */
  peakOpen = 0;
  /** Bytes of the line a slowloris connection trickles. */
  private readonly line = Buffer.from('GET_CHUNK 0 /etc/passwd\n');
  private readonly sent = new WeakMap<Socket, number>();

  constructor(
    private readonly port: number,
    private readonly mode: 'idle' | 'slowloris',
    private readonly byteEveryMs = 500,
  ) {}

  /** Opens `count` connections from each address, 50 at a time, and resolves once all are connected. */
  async start(plan: readonly { address: string; count: number }[]): Promise<void> {
    if (this.mode === 'slowloris') {
      this.trickle = setInterval(() => {
        for (const s of this.open) this.sendByte(s);
      }, this.byteEveryMs);
    }
    const addresses = plan.flatMap(({ address, count }) => Array.from({ length: count }, () => address));
    for (let at = 0; at < addresses.length; at += 50) {
      await Promise.all(addresses.slice(at, at + 50).map((a) => this.connectFrom(a)));
    }
  }

  /** Connections refused at once with `code`. */
  count(code: string): number {
    return this.sockets.filter((s) => s.line?.startsWith(`ERR ${code} `)).length;
  }

  /** Connections that were let in and then closed with `ERR IDLE_TIMEOUT`: how long each lasted. */
  expiredLifetimes(): number[] {
    return this.sockets
      .filter((s) => s.line?.startsWith('ERR IDLE_TIMEOUT ') && s.closedAt !== undefined)
      .map((s) => s.closedAt! - s.openedAt);
  }

  /** Connections open now that the seeder has not answered: the slots the attack holds. */
  get holding(): number {
    return this.sockets.filter((s) => s.line === undefined && s.closedAt === undefined).length;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.trickle);
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  private connectFrom(address: string): Promise<void> {
    return new Promise((resolve) => {
      const record: AttackSocket = { address, openedAt: Date.now() };
      this.sockets.push(record);
      const socket = connect({ host: '127.0.0.1', port: this.port, localAddress: address });
      const decoder = new FrameDecoder();
      socket.on('connect', () => {
        // the extended form, whose refusals and deadlines come with a reason
        socket.write(`${HELLO_LINE}\n`);
        this.open.add(socket);
        this.peakOpen = Math.max(this.peakOpen, this.open.size);
        if (this.mode === 'slowloris') this.sendByte(socket);
        resolve();
      });
      socket.on('data', (d: Buffer) => {
        decoder.push(d);
        for (let f = decoder.next(); f; f = decoder.next()) {
          if (f.type === 'line' && f.line !== HELLO_REPLY && record.line === undefined) record.line = f.line;
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        record.closedAt = Date.now();
        this.open.delete(socket);
        resolve();
        // let in, then thrown out: come back at once and take the slot again
        if (this.stopped) return;
        if (record.line?.startsWith('ERR IDLE_TIMEOUT ')) void this.connectFrom(address);
        // pushed out to make room for a newer connection: come back a little later
        if (record.line?.startsWith('ERR BUSY '))
          setTimeout(() => !this.stopped && void this.connectFrom(address), 100);
      });
    });
  }

  private sendByte(socket: Socket): void {
    const n = this.sent.get(socket) ?? 0;
    if (n >= this.line.length - 1) return; // never the newline: the line stays incomplete
    socket.write(this.line.subarray(n, n + 1));
    this.sent.set(socket, n + 1);
  }
}

/**
 * Opens a connection from 127.0.0.1 in the extended form (HELLO first), sends one request line and returns the first
 * answer line after the HELLO's `OK` (or the `ERR` in its place) and how long it took.
 */
function ask(port: number, line: string): Promise<{ line: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
    const decoder = new FrameDecoder();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${line} within 10 s`));
    }, 10_000);
    socket.on('connect', () => socket.write(`${HELLO_LINE}\n${line}\n`));
    socket.on('data', (d: Buffer) => {
      decoder.push(d);
      let f = decoder.next();
      if (f?.type === 'line' && f.line === HELLO_REPLY) f = decoder.next();
      if (f?.type !== 'line') return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ line: f.line, ms: Date.now() - started });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Attacks on a seeder's connection slots (slowloris, idle floods, one address hogging slots), against real
 * processes: a tracker, a seeding client (alice) and a downloading client (bob) on 127.0.0.1, attackers on
 * 127.0.0.2 and up.
 */
describe('seeder connection limits under attack', () => {
  let network: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let alice: Proc;
  let bob: Proc;
  let alicePort: number;
  let original: string;
  let bobDir: string;
  let downloads = 0;
  const attacks: Attack[] = [];

  beforeAll(async () => {
    network = await trackerNetwork(1);
    tracker = await startTrackerReady(network.infoFile, 1, join(network.dir, 'tracker-data'));
    const aliceDir = join(network.dir, 'alice');
    bobDir = join(network.dir, 'bob');
    mkdirSync(aliceDir);
    mkdirSync(bobDir);
    alicePort = await freePort();
    alice = startClient(
      `127.0.0.1:${alicePort}`,
      network.infoFile,
      [
        '--data-dir',
        join(aliceDir, '.state'),
        '--peer-request-timeout',
        `${REQUEST_TIMEOUT_MS}ms`,
        '--peer-line-timeout',
        `${LINE_TIMEOUT_MS / 1000}s`,
      ],
      aliceDir,
    );
    bob = startClient(
      `127.0.0.1:${await freePort()}`,
      network.infoFile,
      ['--data-dir', join(bobDir, '.state')],
      bobDir,
    );
    await formGroup([
      [alice, 'alice'],
      [bob, 'bob'],
    ]);
    randomFile(join(aliceDir, 'big.bin'), 8 * MB);
    original = await sha1File(join(aliceDir, 'big.bin'));
    await alice.run('upload_file team big.bin', /shared big\.bin in group team \(16 chunks\)/);
  }, 60_000);

  afterEach(() => {
    for (const a of attacks.splice(0)) a.stop();
  });

  afterAll(async () => {
    await Promise.all([alice, bob].map((p) => p?.stop('SIGKILL')));
    await tracker?.stop('SIGKILL');
    if (network) removeDir(network.dir);
  });

  /** bob downloads big.bin from alice; resolves with the summary line once it is verified byte for byte. */
  async function download(): Promise<{ summary: string; ms: number }> {
    const name = `copy-${++downloads}.bin`;
    const started = Date.now();
    await bob.run(`download_file team big.bin ${name}`, /downloading big\.bin/);
    const summary = (await bob.waitFor(/downloaded \[team\] big\.bin to .*/, 45_000)).match(/downloaded .*/)![0];
    expect(await sha1File(join(bobDir, name))).toBe(original);
    return { summary, ms: Date.now() - started };
  }

  /** A fresh connection from 127.0.0.1 gets an answer to its request (not a refusal for lack of slots) in time. */
  async function expectAnsweredPromptly(): Promise<number> {
    const { line, ms } = await ask(alicePort, 'GET_CHUNK 0 /etc/passwd');
    expect(line).toMatch(/^ERR [A-Z_]+ /);
    expect(line).not.toMatch(/^ERR (BUSY|TOO_MANY_CONNECTIONS|IDLE_TIMEOUT) /);
    expect(ms).toBeLessThan(ANSWER_WITHIN_MS);
    return ms;
  }

  /** 127.0.0.2 with `fromMain` connections, then `perOther` from each of `others` further addresses from `firstOther`. */
  const plan = (fromMain: number, others: number, perOther: number, firstOther: number) => [
    { address: '127.0.0.2', count: fromMain },
    ...Array.from({ length: others }, (_, i) => ({ address: `127.0.0.${firstOther + i}`, count: perOther })),
  ];

  it('keeps serving during 520 slowloris connections: one address gets 8 slots, trickled lines are cut off', async () => {
    const attack = new Attack(alicePort, 'slowloris', 500);
    attacks.push(attack);
    // 500 from 127.0.0.2, 2 from each of 127.0.0.3 ... 127.0.0.12
    await attack.start(plan(500, 10, 2, 3));
    const admitted = PER_ADDRESS + 10 * 2;
    await until(() => attack.count('TOO_MANY_CONNECTIONS') === 500 - PER_ADDRESS, 'the extra ones are refused');
    // (one thrown out may be between its close and its comeback)
    expect(attack.holding).toBeLessThanOrEqual(admitted);
    expect(attack.holding).toBeGreaterThanOrEqual(admitted - 2);

    const answered = await expectAnsweredPromptly();
    const { summary, ms } = await download();
    expect(summary).toMatch(/SHA-1 verified; chunks from alice 16$/);
    // the attack was on all along: trickling connections were thrown out, came back and hold slots again
    expect(attack.holding).toBeGreaterThan(0);

    await until(() => attack.expiredLifetimes().length >= admitted, 'every admitted one is thrown out once');
    const lifetimes = attack.expiredLifetimes();
    expect(Math.min(...lifetimes)).toBeGreaterThanOrEqual(Math.min(REQUEST_TIMEOUT_MS, LINE_TIMEOUT_MS) - 200);
    expect(Math.max(...lifetimes)).toBeLessThan(Math.max(REQUEST_TIMEOUT_MS, LINE_TIMEOUT_MS) + 4_000);
    await expectAnsweredPromptly();
    console.log(
      `slowloris: ${attack.sockets.length} connections opened, ${attack.count('TOO_MANY_CONNECTIONS')} refused, ` +
        `${lifetimes.length} cut off after ${Math.min(...lifetimes)}-${Math.max(...lifetimes)} ms; ` +
        `fresh connection answered in ${answered} ms; 8 MB download took ${ms} ms; at most ${attack.peakOpen} open at once`,
    );
  });

  it('keeps serving during 1,000 idle connections, and closes the idle ones at the request deadline', async () => {
    const attack = new Attack(alicePort, 'idle');
    attacks.push(attack);
    // 900 from 127.0.0.2, 4 from each of 127.0.0.20 ... 127.0.0.44
    await attack.start(plan(900, 25, 4, 20));
    const admitted = PER_ADDRESS + 25 * 4;
    await until(() => attack.count('TOO_MANY_CONNECTIONS') === 900 - PER_ADDRESS, 'the extra ones are refused');

    const answered = await expectAnsweredPromptly();
    const { summary, ms } = await download();
    expect(summary).toMatch(/SHA-1 verified; chunks from alice 16$/);

    await until(() => attack.expiredLifetimes().length >= admitted, 'every admitted one is closed once');
    const lifetimes = attack.expiredLifetimes();
    expect(Math.min(...lifetimes)).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 200);
    expect(Math.max(...lifetimes)).toBeLessThan(REQUEST_TIMEOUT_MS + 4_000);
    const expired = attack.sockets.find((s) => s.line?.startsWith('ERR IDLE_TIMEOUT'))!;
    expect(expired.line).toBe(`ERR IDLE_TIMEOUT no request served within ${REQUEST_TIMEOUT_MS / 1000} s; closing`);
    const refused = attack.sockets.find((s) => s.line?.startsWith('ERR TOO_MANY_CONNECTIONS'))!;
    expect(refused.line).toBe(
      `ERR TOO_MANY_CONNECTIONS ${PER_ADDRESS} connections from 127.0.0.2 already (at most ${PER_ADDRESS}); try later`,
    );
    await expectAnsweredPromptly();
    console.log(
      `idle flood: ${attack.sockets.length} connections opened, ${attack.count('TOO_MANY_CONNECTIONS')} refused, ` +
        `${lifetimes.length} closed after ${Math.min(...lifetimes)}-${Math.max(...lifetimes)} ms; ` +
        `fresh connection answered in ${answered} ms; 8 MB download took ${ms} ms; at most ${attack.peakOpen} open at once`,
    );
  });

  it('keeps serving when idle connections from 70 addresses want more than every slot', async () => {
    const attack = new Attack(alicePort, 'idle');
    attacks.push(attack);
    // 8 from each of 127.0.0.50 ... 127.0.0.119: 560 connections for 512 slots, none over its address's cap
    await attack.start(plan(0, 70, PER_ADDRESS, 50).slice(1));
    await until(() => attack.count('BUSY') >= 560 - 512, 'newcomers push out older connections');

    const answered = await expectAnsweredPromptly();
    const { summary, ms } = await download();
    expect(summary).toMatch(/SHA-1 verified; chunks from alice 16/);
    expect(attack.count('TOO_MANY_CONNECTIONS')).toBe(0);
    await expectAnsweredPromptly();
    console.log(
      `${attack.sockets.length} idle connections from 70 addresses: ${attack.count('BUSY')} pushed out, ` +
        `${attack.expiredLifetimes().length} timed out; fresh connection answered in ${answered} ms; ` +
        `8 MB download took ${ms} ms (${summary.replace(/.*SHA-1 verified; /, '')})`,
    );
  });

  it('retries a seeder that refuses it for a while (its own address at the cap), then downloads', async () => {
    // the test takes every slot 127.0.0.1 has at alice: bob, on 127.0.0.1 too, is turned away
    const hogs: Socket[] = [];
    const closed: Promise<void>[] = [];
    for (let i = 0; i < PER_ADDRESS; i++) {
      const s = connect({ host: '127.0.0.1', port: alicePort, localAddress: '127.0.0.1' });
      s.on('error', () => undefined);
      s.resume(); // read what alice sends, and see her close
      closed.push(new Promise((resolve) => s.once('close', () => resolve())));
      await new Promise((resolve) => s.once('connect', resolve));
      hogs.push(s);
    }
    try {
      const probe = await ask(alicePort, 'GET_CHUNK 0 /etc/passwd');
      expect(probe.line).toMatch(/^ERR TOO_MANY_CONNECTIONS /);

      // alice closes the hogs at her request deadline; bob, retrying with backoff, gets in then
      const { summary, ms } = await download();
      console.log(`own address at the cap: download done in ${ms} ms: ${summary}`);
      expect(summary).toMatch(
        /chunks from alice 16; retried alice (once|\d+ times) \(last: refused .*TOO_MANY_CONNECTIONS\)\)$/,
      );
      await Promise.all(closed);
    } finally {
      hogs.forEach((s) => s.destroy());
    }
  });
});
