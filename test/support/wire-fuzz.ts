import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import {
  COMMAND_SPECS,
  FrameDecoder,
  HELLO_LINE,
  HELLO_REPLY,
  isCommandName,
  Reply,
  ReplyAssembler,
} from '@app/protocol';

/*
 * Random bytes and near-valid lines for the tracker's client port, the sync handshake and a seeder's port,
 * sent by attacker connections bound to other loopback addresses (127.0.0.2 ...), and what to watch meanwhile.
 */

/** One write of an attacker: text lines (sent with '\n') or raw bytes. */
export type Payload = string | Uint8Array;

/** Commands of near-valid lines (not logout: the attackers that logged in should stay so). */
const COMMANDS = [
  'create_user',
  'login',
  'create_group',
  'join_group',
  'leave_group',
  'list_groups',
  'list_requests',
  'accept_request',
  'upload_file',
  'list_files',
  'download_file',
  'new_seeder',
  'stop_share',
  'resume',
];

/** Ids the attackers use: an `x` and lowercase letters, so that they never meet the test's own users. */
const attackerId = fc.oneof(fc.constantFrom('x', 'xa', 'xb', 'xatk0', 'xatk1'), fc.stringMatching(/^x[a-z]{0,6}$/));
const hex = (len: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${len}}$`));

/** Any short text: unicode, controls, quotes, backslashes, tabs, no newline. */
const wildText = fc
  .string({
    unit: fc.oneof(
      fc.constantFrom('"', '\\', '\t', ' ', '#', ',', '@', '%', '\r', '\u0000', '\u0085', '\u202e'),
      fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    ),
    maxLength: 40,
  })
  .map((s) => s.replace(/\n/g, ' '));

const arg = fc.oneof(
  { weight: 4, arbitrary: attackerId },
  { weight: 2, arbitrary: wildText },
  { weight: 1, arbitrary: hex(40) },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.constantFrom('@1', '@4096', '@0', '@99999999', '-', '""', '"a b"', '#x', '127.0.0.1:1') },
);

/** A tracker command line that is nearly right: a real command, odd arguments (usually as many as it takes). */
const nearValidTrackerLine = fc
  .tuple(
    fc.option(fc.oneof(fc.stringMatching(/^#[A-Za-z0-9_-]{1,70}$/), fc.constant('#')), { freq: 5 }),
    fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...COMMANDS) }, { weight: 1, arbitrary: wildText }),
    fc.array(arg, { maxLength: 8 }),
    fc.boolean(),
  )
  .map(([id, name, args, fitting]) => {
    const count = isCommandName(name) ? COMMAND_SPECS[name].args.length : args.length;
    const used = fitting
      ? args
          .slice(0, count)
          .concat(Array.from({ length: count }, () => 'xa'))
          .slice(0, count)
      : args;
    return [id, name, ...used].filter((w) => w !== null).join(' ');
  });

/** An upload that is right but for a detail or two: sizes and chunk counts that may not match, odd ports. */
const nearValidUpload = fc
  .tuple(
    attackerId,
    fc.constantFrom('/x/f.bin', '/x/a b.txt', 'f', '/x/', '/x/..'),
    fc.constantFrom(0, 1, 524288, 524289, 1048577),
    hex(40),
    fc.array(hex(40), { maxLength: 3 }),
    fc.constantFrom('7000', '127.0.0.1:7001', '0.0.0.0:7002', '10.1.1.1:7003', '0', 'x:1'),
  )
  .map(([g, path, size, hash, chunks, port]) =>
    ['upload_file', g, `"${path}"`, size, hash, chunks.join(',') || '-', port].join(' '),
  );

/** An upload with its `@N` continuation lines, not logged in: long lines of almost-hashes. */
const continuationBurst = fc
  .tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 30_000 }), fc.boolean())
  .map(([n, width, ok]) => {
    const line = ok ? Array.from({ length: Math.ceil(width / 41) }, () => 'a'.repeat(40)).join(',') : 'z'.repeat(width);
    return [`upload_file xg /x/y.bin 1 ${'b'.repeat(40)} @${n} 7000`, ...Array.from({ length: n }, () => line)].join(
      '\n',
    );
  });

const randomBytes = fc.uint8Array({ minLength: 1, maxLength: 4096 });

/** A line longer than every limit (the tracker's is 64 KiB). */
const hugeLine = fc
  .tuple(fc.integer({ min: 65 * 1024, max: 300 * 1024 }), fc.constantFrom('a', '"', ' ', '\u00e9'))
  .map(([n, c]) => `create_group ${c.repeat(n)}`);

/** What attackers send to the tracker's client port. */
export const trackerPayload: fc.Arbitrary<Payload> = fc.oneof(
  { weight: 8, arbitrary: nearValidTrackerLine },
  { weight: 2, arbitrary: nearValidUpload },
  { weight: 3, arbitrary: randomBytes },
  { weight: 1, arbitrary: continuationBurst },
  { weight: 1, arbitrary: hugeLine },
);

export const SYNC_MARKER_TEXT = '123456789';

const stamp = fc
  .tuple(fc.nat(3), fc.nat(10_000), fc.nat(1_000_000), fc.nat(), fc.oneof(fc.constant('-'), attackerId))
  .map(([o, s, l, t, r]) => `${o}/${s}/${l}/${t}/${r}`);

/** Ids forged sync lines try to create; afterwards none of them may exist. */
export const FORGED = { user: 'forged-u1', group: 'forged-g1', file: 'forged.bin' };

const forgedOp = fc.oneof(
  stamp.map((s) => `create_user ${FORGED.user} scrypt$16384$8$1$AAAA$BBBB - ${s}`),
  stamp.map((s) => `create_group ${FORGED.group} ${FORGED.user} ${s}`),
  fc.tuple(hex(64), stamp).map(([h, s]) => `session_open ${h} ${FORGED.user} ${s}`),
  stamp.map((s) => `join_group team ${FORGED.user} ${s}`),
  stamp.map((s) => `accept_request team ${FORGED.user} alice ${s}`),
  stamp.map((s) => `upload_file team /x/${FORGED.file} 1 ${'c'.repeat(40)} ${'d'.repeat(40)} ${FORGED.user} ${s}`),
  stamp.map((s) => `leave_group team alice ${s}`),
  fc.array(arg, { maxLength: 6 }).map((a) => a.join(' ')),
);

/** One sync line from a peer without the network key: the handshake, forged proofs, then anything. */
const syncLine = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom('sync_hello 2', 'sync_hello 1', 'sync_hello 3', 'sync_hello 0', 'sync_hello'),
  },
  { weight: 1, arbitrary: fc.integer().map((n) => `sync_hello ${n}`) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(1, 2, 3), hex(64)).map(([n, nonce]) => `sync_hello ${n} ${nonce}`) },
  { weight: 3, arbitrary: hex(64).map((h) => `sync_auth ${h}`) },
  { weight: 1, arbitrary: fc.oneof(wildText, hex(63), hex(65)).map((h) => `sync_auth ${h}`) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.oneof(fc.constant('-'), fc.constant('1:0,2:0'), wildText), fc.oneof(fc.nat().map(String), wildText))
      .map(([vv, n]) => `sync_fetch ${vv} ${n}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('sync_digest', 'presence_reset') },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        attackerId,
        fc.constantFrom('127.0.0.1:6001', '10.0.0.1:1', 'x'),
        arg,
        arg,
        arg,
        fc.constantFrom('seed', 'p2p-share/2', 'x'),
      )
      .map((p) => `presence_set ${p.join(' ')}`),
  },
  { weight: 1, arbitrary: fc.tuple(attackerId, arg, arg).map((p) => `presence_unset ${p.join(' ')}`) },
  { weight: 4, arbitrary: forgedOp },
);

/** A handshake attempt: hello (usually as tracker 2), a forged proof, then forged changes; now and then raw bytes. */
export const syncPayload: fc.Arbitrary<Payload> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(hex(64), hex(64), fc.array(syncLine, { minLength: 1, maxLength: 8 }))
      .map(([nonce, proof, lines]) =>
        [`sync_hello 2 ${nonce}`, `sync_auth ${proof}`, ...lines].map((l) => `${SYNC_MARKER_TEXT} ${l}`).join('\n'),
      ),
  },
  { weight: 4, arbitrary: syncLine.map((l) => `${SYNC_MARKER_TEXT} ${l}`) },
  { weight: 1, arbitrary: fc.tuple(syncLine, wildText).map(([l, w]) => `${SYNC_MARKER_TEXT}${w} ${l}`) },
  { weight: 1, arbitrary: randomBytes },
);

/** What attackers send to a seeder: GET_CHUNK with junk indexes and paths, huge lines, binary. */
export function seederPayload(sharedPath: string): fc.Arbitrary<Payload> {
  const index = fc.oneof(
    fc.constantFrom('-1', '99999999999999999999', '1e3', '0x1', '', '4294967296', '1.5', 'NaN', '٣'),
    fc.integer({ min: 1000, max: 999_999_999 }).map(String),
  );
  const path = fc.oneof(
    fc.constantFrom('/etc/passwd', '../../etc/passwd', 'shared.bin', '/', '', '""', '"/tmp"', `${sharedPath}x`),
    fc.constantFrom(`${sharedPath}/..`, `${sharedPath.replace(/\/[^/]*$/, '')}/../etc/passwd`),
    wildText,
  );
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(index, path).map(([i, p]) => `GET_CHUNK ${i} ${p}`) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('GET_CHUNK', 'get_chunk', 'AUTH', 'CHUNK', 'ERR'), fc.array(arg, { maxLength: 4 }))
        .map(([c, a]) => [c, ...a].join(' ')),
    },
    { weight: 2, arbitrary: randomBytes },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 9 * 1024, max: 200 * 1024 }).map((n) => `GET_CHUNK 0 /${'p'.repeat(n)}`),
    },
  );
}

/* --------------------------------------------- attacker connections --------------------------------------------- */

export interface AttackStats {
  connections: number;
  closedByPeer: number;
  bytesSent: number;
  bytesReceived: number;
  replies: number;
  /** Answers by code (`OK`, `ERR NOT_LOGGED_IN`, `CHUNK`...). */
  answers: Map<string, number>;
  /** Replies an attacker got that the check function found wrong. */
  problems: string[];
}

export const newStats = (): AttackStats => ({
  connections: 0,
  closedByPeer: 0,
  bytesSent: 0,
  bytesReceived: 0,
  replies: 0,
  answers: new Map(),
  problems: [],
});

/** How an attacker reads what comes back: tracker replies (`OK n`/`ERR`) or seeder replies (`CHUNK i len` + bytes). */
export type ReplyKind = 'tracker' | 'seeder';

/** A framed reply header, as only extended-form connections (and sync lines) get. */
const FRAMED_HEADER = /^(OK \d+|ERR [A-Z][A-Z0-9_]*)( |$)/;
/** The code a seed-form `error: <message>` line is noted under. */
export const SEED_ERROR = 'error:';

/** A connection from `localAddress` that sends payloads, reads and checks what comes back, and tolerates closes. */
class Attacker {
  private socket: Socket | undefined;
  private closed = true;
  private decoder = new FrameDecoder(64 * 1024 * 1024);
  private assembler = new ReplyAssembler();
  private broken = false;
  /** Called when a reply arrives or the connection closes (the pacing in `send` waits for it). */
  private wake: (() => void) | undefined;
  /** Extended form: the answer to the HELLO is still to come. */
  private greeting = false;
  /** Seed form: body lines of a framed (sync) reply still to come. */
  private framedBody = 0;

  constructor(
    private readonly port: number,
    private readonly localAddress: string,
    private readonly kind: ReplyKind,
    private readonly stats: AttackStats,
    private readonly check: (reply: Reply | { chunk: number }) => string,
    private readonly preamble: readonly string[],
    /** Sends `HELLO p2p-share/2` first (extended form); else the connection speaks the seed form. */
    private readonly hello: boolean,
    /** Seed form: framed replies are expected (sync lines), not a problem. */
    private readonly seedFramedOk: boolean,
  ) {}

  private open(): Promise<void> {
    return new Promise((resolve) => {
      const socket = connect({ port: this.port, host: '127.0.0.1', localAddress: this.localAddress });
      this.socket = socket;
      this.decoder = new FrameDecoder(64 * 1024 * 1024);
      this.assembler = new ReplyAssembler();
      this.broken = false;
      this.greeting = this.hello;
      this.framedBody = 0;
      this.stats.connections++;
      socket.on('connect', () => {
        this.closed = false;
        resolve();
      });
      socket.on('data', (d: Buffer) => this.read(d));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (!this.closed) this.stats.closedByPeer++;
        this.closed = true;
        this.wake?.();
        resolve();
      });
    });
  }

  private read(data: Buffer): void {
    this.stats.bytesReceived += data.length;
    if (this.broken) return;
    this.decoder.push(data);
    try {
      for (let f = this.decoder.next(); f; f = this.decoder.next()) {
        if (f.type === 'overflow') throw new Error('a reply line longer than 64 MiB');
        if (f.type === 'data') continue;
        if (this.kind === 'seeder') {
          const chunk = /^CHUNK (\d+) (\d+)$/.exec(f.line);
          if (f.line === HELLO_REPLY) continue; // the answer to an extended attacker's HELLO
          if (chunk) {
            this.decoder.expectData(Number(chunk[2]));
            this.note({ chunk: Number(chunk[1]) });
          } else if (/^ERR [A-Z_]+ /.test(f.line))
            this.note({ ok: false, code: f.line.split(' ')[1], message: f.line });
          else throw new Error(`not a seeder reply: ${JSON.stringify(f.line.slice(0, 80))}`);
          continue;
        }
        if (this.greeting) {
          this.greeting = false;
          if (f.line !== HELLO_REPLY) throw new Error(`HELLO answered with ${JSON.stringify(f.line.slice(0, 80))}`);
          continue;
        }
        if (!this.hello) {
          this.readSeedLine(f.line);
          continue;
        }
        const reply = this.assembler.push(f.line);
        if (reply) this.note(reply);
      }
    } catch (err) {
      this.broken = true;
      this.stats.problems.push(`malformed reply on ${this.localAddress}: ${(err as Error).message}`);
    }
  }

  /**
   * A line on a seed-form connection: readable text (`error: <message>` or a message or body line), or part
   * of a framed reply to a sync line. Text lines are noted one by one (a seed reply has no line count).
   */
  private readSeedLine(line: string): void {
    if (this.framedBody > 0 || FRAMED_HEADER.test(line)) {
      if (this.framedBody > 0) this.framedBody--;
      else {
        if (!this.seedFramedOk) throw new Error(`a seed-form connection got a framed line: ${line.slice(0, 80)}`);
        const count = /^OK (\d+)/.exec(line);
        this.framedBody = count ? Number(count[1]) : 0;
      }
      const reply = this.assembler.push(line);
      if (reply) this.note(reply);
      return;
    }
    if (line.startsWith('error: ')) this.note({ ok: false, code: SEED_ERROR, message: line.slice(7) });
    else this.note({ ok: true, message: line, lines: [] });
  }

  private note(reply: Reply | { chunk: number }): void {
    this.stats.replies++;
    const key =
      'chunk' in reply ? 'CHUNK' : reply.ok ? 'OK' : reply.code === SEED_ERROR ? SEED_ERROR : `ERR ${reply.code}`;
    this.stats.answers.set(key, (this.stats.answers.get(key) ?? 0) + 1);
    this.wake?.();
    const problem = this.check(reply);
    if (problem && this.stats.problems.length < 20) this.stats.problems.push(problem);
  }

  /**
   * Sends one payload (reconnecting first if the peer closed), waiting for the socket to drain and then for
   * an answer or `paceMs`, whichever comes first: a fuzz, not a flood (the limits have their own tests).
   */
  async send(payload: Payload, paceMs: number): Promise<void> {
    if (this.closed) {
      await this.open();
      const first = this.hello ? [HELLO_LINE, ...this.preamble] : this.preamble;
      if (!this.closed && first.length) this.socket!.write(first.map((l) => `${l}\n`).join(''));
    }
    const socket = this.socket!;
    if (this.closed) return;
    const data = typeof payload === 'string' ? Buffer.from(`${payload}\n`) : Buffer.from(payload);
    this.stats.bytesSent += data.length;
    const flushed = socket.write(data);
    if (!flushed) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done).off('close', done);
          resolve();
        };
        socket.on('drain', done).on('close', done);
      });
    }
    if (paceMs > 0 && !this.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, paceMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}

export interface AttackOptions {
  readonly port: number;
  /** Loopback addresses to send from, one or more connections each. */
  readonly addresses: readonly string[];
  readonly connectionsPerAddress: number;
  readonly payloads: readonly Payload[];
  readonly kind: ReplyKind;
  /** Lines each attacker connection sends first (and again after every reconnect), e.g. to log in. */
  readonly preamble?: (attacker: number) => readonly string[];
  /** After each payload, wait at most this long for an answer before sending the next (0: no wait). */
  readonly paceMs?: number;
  /** A problem with one reply an attacker got, or ''. Seed-form lines come as one reply each (see `readSeedLine`). */
  readonly check?: (reply: Reply | { chunk: number }) => string;
  /**
   * Whether attacker k opens with `HELLO p2p-share/2` (extended form) or speaks the seed form (tracker
   * kind only; default: half of them each, crossed with the preamble's every-other pattern).
   */
  readonly hello?: (attacker: number) => boolean;
  /** Seed-form attackers may get framed replies (their lines are sync lines); else a framed line is a problem. */
  readonly seedFramedOk?: boolean;
}

/** Sends every payload once, spread over the attacker connections, each connection in order. */
export async function attack(options: AttackOptions): Promise<AttackStats> {
  const stats = newStats();
  const attackers: Attacker[] = [];
  for (const address of options.addresses) {
    for (let i = 0; i < options.connectionsPerAddress; i++) {
      const k = attackers.length;
      const preamble = options.preamble?.(k) ?? [];
      const hello = options.kind === 'tracker' && (options.hello?.(k) ?? Math.floor(k / 2) % 2 === 0);
      const check = options.check ?? (() => '');
      const seedFramedOk = options.seedFramedOk ?? false;
      attackers.push(new Attacker(options.port, address, options.kind, stats, check, preamble, hello, seedFramedOk));
    }
  }
  await Promise.all(
    attackers.map(async (a, k) => {
      for (let i = k; i < options.payloads.length; i += attackers.length)
        await a.send(options.payloads[i], options.paceMs ?? 20);
    }),
  );
  // let the last replies arrive before closing
  await new Promise((r) => setTimeout(r, 200));
  attackers.forEach((a) => a.close());
  return stats;
}

/* ------------------------------------------------- watching ------------------------------------------------- */

/** Resident memory of a process, in bytes (Linux). */
export function residentBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Samples a process's VmRSS every `everyMs` until stopped; keeps the highest. */
export class MemoryWatch {
  peak = 0;
  readonly first: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.first = residentBytes(pid);
    this.peak = this.first;
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    try {
      this.peak = Math.max(this.peak, residentBytes(this.pid));
    } catch {
      // the process is gone; the test will notice
    }
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

/** Runs `probe` over and over until stopped, recording the slowest answer of each run and what failed. */
export class Prober {
  readonly times: number[] = [];
  readonly failures: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  /** `probe` returns the time its slowest answer took, in ms. */
  constructor(probe: () => Promise<number>, gapMs = 250) {
    this.loop = (async () => {
      while (this.running) {
        try {
          this.times.push(await probe());
        } catch (err) {
          this.failures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, gapMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  get slowest(): number {
    return Math.max(0, ...this.times);
  }
}

export const MB = 1024 * 1024;
