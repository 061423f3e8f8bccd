import { CHUNK_SIZE } from '@app/chunking';
import {
  ErrorCode,
  formatBitfieldReply,
  formatChunkHeader,
  formatHaveLines,
  FrameDecoder,
  GetChunkRequest,
  HELLO_LINE,
  HELLO_REPLY,
  parseGetChunk,
  parsePeerRequest,
} from '@app/protocol';
import { acceptTls, Identity, serverContext, sniffStartTls } from '@app/tls';
import * as net from 'node:net';

/** What the fake seeder does with one request. */
export type ChunkAnswer =
  | { readonly kind: 'serve' }
  /** The right header, with one byte of the body flipped. */
  | { readonly kind: 'corrupt' }
  | { readonly kind: 'err'; readonly code: string; readonly message: string }
  /** Answer nothing more on this connection. */
  | { readonly kind: 'stall' }
  /** Destroy every socket of this seeder at once. */
  | { readonly kind: 'vanish' }
  /** Send these bytes instead of an answer. */
  | { readonly kind: 'raw'; readonly bytes: Buffer | string }
  /** Send the first `bytes` bytes of the right answer, then destroy the connection (a seeder dying mid-chunk). */
  | { readonly kind: 'cut'; readonly bytes: number };

export interface SeenRequest extends GetChunkRequest {
  /** 1 for the first request this seeder received. */
  readonly n: number;
}

export type Decide = (req: SeenRequest) => ChunkAnswer | void;

export interface FakeSeederOptions {
  readonly chunkSize?: number;
  /** The capability it serves `data` for (others get `DENIED`). Default `test-capability`. */
  readonly capability?: string;
  /** Default: serve every request. */
  readonly decide?: Decide;
  /** Answer every connection with `ERR BUSY` and close it, as a seeder at its connection limit does. */
  readonly busy?: boolean;
  /** Answer only the first this many connections so (then serve as usual). */
  readonly busyConnections?: number;
  /**
   * `extended` (default): answers a first `HELLO p2p-share/2` with `OK 0 p2p-share/2`, then pipelined requests with
   * `CHUNK` headers. `seed`: as the seed's seeders do, the first line is the one request of the connection,
   * answered with the chunk's raw bytes and a close; every refusal (and BUSY) is a close without a byte.
   */
  readonly form?: 'extended' | 'seed';
  /** Serve whatever the request names (as a seed seeder serving by index, whose item cannot be known ahead). */
  readonly acceptAny?: boolean;
  /** Seed form: what it does with a first line that is no `GET_CHUNK` (our HELLO): close silently, or send junk. */
  readonly onUnknown?: 'close' | 'junk';
  /** Extended form: answers (in order) only once this has resolved, as a seeder slower than the others does. */
  readonly holdAnswersUntil?: Promise<void>;
  /**
   * A partial seeder: holds only these chunks (more with `have`), answers `BITFIELD` with them and pushes `HAVE`
   * lines to the connections that asked, and answers a request for any other chunk `ERR NOT_HELD` at once.
   * Without it, it holds the whole file (and answers `BITFIELD` with every bit set).
   */
  readonly held?: Iterable<number>;
  /** Answers `BITFIELD` with `ERR UNKNOWN_COMMAND`, as an older seeder of ours does. */
  readonly noBitfield?: boolean;
  /** Extended form: sends its answers at about this many bytes per second (all connections together). */
  readonly bytesPerSecond?: number;
  /**
   * Speaks TLS only, presenting this identity: a connection must start with the TLS handshake or with `STARTTLS`
   * (any other is closed), and is then served inside TLS.
   */
  readonly identity?: Identity;
}

/** What the seed-form fake sends to a line it does not know, with `onUnknown: 'junk'`. */
export const SEED_JUNK = 'invalid command\n';

/**
 * An in-process chunk server on a free 127.0.0.1 port speaking the peer
 * protocol for one in-memory file; `decide` makes it misbehave per request.
 */
export class FakeSeeder {
  readonly requests: SeenRequest[] = [];
  connections = 0;
  /** `HELLO p2p-share/2` lines received as first lines. */
  hellos = 0;
  /** Connections over TLS (handshake done). */
  tlsConnections = 0;
  /** Seed form: requests received and not yet answered now, and the most there were at once. */
  private unanswered = 0;
  peakUnanswered = 0;
  /** `Date.now()` of each connection accepted. */
  readonly connectedAt: number[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  private readonly chunkSize: number;
  readonly capability: string;
  /** Capabilities it serves for; starts with `capability`, tests add and remove. */
  readonly accepted = new Set<string>();
  private waiters: { count: number; resolve: () => void }[] = [];
  /** Partial mode: the chunks it holds. */
  readonly held: Set<number> | undefined;
  /** `BITFIELD` requests received, and `GET_CHUNK`s answered `NOT_HELD`. */
  bitfieldRequests = 0;
  notHeld = 0;
  /** Connections that got a have-list: they are told of chunks gained. */
  private readonly listening = new Set<net.Socket>();
  /** Throttled: when the last answer queued is through. */
  private sendFreeAt = 0;

  constructor(
    private readonly data: Buffer,
    private readonly options: FakeSeederOptions = {},
  ) {
    this.chunkSize = options.chunkSize ?? CHUNK_SIZE;
    this.capability = options.capability ?? 'test-capability';
    this.accepted.add(this.capability);
    this.held = options.held ? new Set(options.held) : undefined;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  get chunkCount(): number {
    return Math.ceil(this.data.length / this.chunkSize);
  }

  /** Partial mode: the seeder gains these chunks, and tells every connection that asked for its have-list. */
  have(indexes: readonly number[]): void {
    const fresh = indexes.filter((i) => !this.held!.has(i));
    fresh.forEach((i) => this.held!.add(i));
    if (fresh.length === 0) return;
    const lines = formatHaveLines(fresh)
      .map((l) => `${l}\n`)
      .join('');
    for (const socket of this.listening) this.send(socket, lines);
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Chunk indexes requested, in arrival order. */
  get indexes(): number[] {
    return this.requests.map((r) => r.index);
  }

  get openSockets(): number {
    return this.sockets.size;
  }

  /** Listens on `port` of 127.0.0.1 (default: a free one). */
  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return this;
  }

  /** Resolves once `count` requests have arrived in total. */
  receivedRequests(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** Resolves once no client socket is open. */
  async allClosed(): Promise<void> {
    await Promise.all([...this.sockets].map((s) => new Promise((resolve) => s.once('close', resolve))));
  }

  vanish(): void {
    this.sockets.forEach((s) => s.destroy());
  }

  async stop(): Promise<void> {
    this.vanish();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.connections++;
    this.connectedAt.push(Date.now());
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    if (this.options.identity) return void this.upgrade(socket, this.options.identity);
    this.serve(socket);
  }

  private async upgrade(socket: net.Socket, identity: Identity): Promise<void> {
    const first = await sniffStartTls(socket, { directTls: true });
    if (first.kind !== 'starttls' && first.kind !== 'tls') return void socket.destroy();
    const head = first.kind === 'tls' ? first.head : undefined;
    const tls = await acceptTls(socket, { context: serverContext(identity), timeoutMs: 5_000, head }).catch(
      () => undefined,
    );
    if (!tls) return;
    this.tlsConnections++;
    this.sockets.add(tls);
    tls.on('close', () => this.sockets.delete(tls));
    tls.on('error', () => undefined);
    this.serve(tls);
  }

  private serve(socket: net.Socket): void {
    const seed = this.options.form === 'seed';
    if (this.options.busy || this.connections <= (this.options.busyConnections ?? 0)) {
      if (seed) socket.end();
      else socket.end(`ERR ${ErrorCode.Busy} serving 0 connections already; try later\n`);
      return;
    }
    if (seed) return this.acceptSeed(socket);
    const decoder = new FrameDecoder();
    let stalled = false;
    let first = true;
    socket.on('data', (bytes: Buffer) => {
      decoder.push(bytes);
      for (let frame = decoder.next(); frame && !socket.destroyed; frame = decoder.next()) {
        if (frame.type !== 'line') continue;
        if (first && frame.line === HELLO_LINE) {
          first = false;
          this.hellos++;
          socket.write(`${HELLO_REPLY}\n`);
          continue;
        }
        first = false;
        let req: GetChunkRequest;
        try {
          const parsed = parsePeerRequest(frame.line);
          if (parsed.kind === 'bitfield') {
            this.answerBitfield(socket, parsed.capability);
            continue;
          }
          req = parsed;
        } catch {
          socket.write(`ERR ${ErrorCode.BadSyntax} bad request\n`);
          continue;
        }
        const seen = { ...req, n: this.requests.length + 1 };
        this.requests.push(seen);
        this.waiters = this.waiters.filter((w) => (this.requests.length >= w.count ? (w.resolve(), false) : true));
        if (stalled) continue;
        if (this.held && !this.held.has(req.index)) {
          this.notHeld++;
          this.send(socket, `ERR ${ErrorCode.NotHeld} chunk ${req.index} is not here yet\n`);
          continue;
        }
        const answer = this.options.decide?.(seen) ?? { kind: 'serve' };
        if (answer.kind === 'stall') stalled = true;
        else if (answer.kind === 'vanish') this.vanish();
        else if (answer.kind === 'cut') this.cut(socket, this.answer(req, { kind: 'serve' }), answer.bytes);
        else this.send(socket, this.answer(req, answer));
      }
    });
  }

  /** An answer to a `BITFIELD`: the chunks it holds, or `UNKNOWN_COMMAND` as an older seeder. */
  private answerBitfield(socket: net.Socket, capability: string): void {
    this.bitfieldRequests++;
    if (this.options.noBitfield) {
      return this.send(socket, `ERR ${ErrorCode.UnknownCommand} unknown peer command 'BITFIELD'\n`);
    }
    if (!this.options.acceptAny && !this.accepted.has(capability)) {
      return this.send(socket, `ERR ${ErrorCode.Denied} no valid capability\n`);
    }
    const bits = Uint8Array.from({ length: this.chunkCount }, (_, i) => (!this.held || this.held.has(i) ? 1 : 0));
    this.send(socket, `${formatBitfieldReply(bits)}\n`);
    this.listening.add(socket);
    socket.once('close', () => this.listening.delete(socket));
  }

  /** Writes an answer whole, in order: after `holdAnswersUntil`, and paced to `bytesPerSecond`. */
  private send(socket: net.Socket, bytes: Buffer | string): void {
    const rate = this.options.bytesPerSecond;
    const hold = this.options.holdAnswersUntil;
    if (hold) return void hold.then(() => socket.write(bytes));
    if (!rate) return void socket.write(bytes);
    const now = Date.now();
    this.sendFreeAt = Math.max(now, this.sendFreeAt) + (Buffer.byteLength(bytes) * 1000) / rate;
    setTimeout(() => !socket.destroyed && socket.write(bytes), this.sendFreeAt - now);
  }

  /** One request per connection, raw bytes or a silent close, as the seed's seeders do. */
  private acceptSeed(socket: net.Socket): void {
    const decoder = new FrameDecoder();
    let answered = false;
    socket.on('data', (bytes: Buffer) => {
      if (answered) return;
      decoder.push(bytes);
      const frame = decoder.next();
      if (!frame || frame.type !== 'line') return;
      answered = true;
      let req: GetChunkRequest;
      try {
        req = parseGetChunk(frame.line);
      } catch {
        if (frame.line === HELLO_LINE) this.hellos++;
        if (this.options.onUnknown === 'junk') socket.end(SEED_JUNK);
        else socket.end();
        return;
      }
      const seen = { ...req, n: this.requests.length + 1 };
      this.requests.push(seen);
      this.waiters = this.waiters.filter((w) => (this.requests.length >= w.count ? (w.resolve(), false) : true));
      this.peakUnanswered = Math.max(this.peakUnanswered, ++this.unanswered);
      let counted = true;
      const over = () => {
        if (counted) this.unanswered--;
        counted = false;
      };
      // all of the answer handed to the kernel: the client may have it and ask for the next one before the close
      socket.once('finish', over);
      socket.once('close', over);
      const answer = this.options.decide?.(seen) ?? { kind: 'serve' };
      if (answer.kind === 'stall') return;
      if (answer.kind === 'vanish') return this.vanish();
      if (answer.kind === 'raw') return void socket.end(answer.bytes);
      const body = this.body(req, answer.kind === 'corrupt');
      if (answer.kind === 'err' || !body) return void socket.end();
      if (answer.kind === 'cut') return this.cut(socket, body, answer.bytes);
      socket.end(body);
    });
  }

  private cut(socket: net.Socket, bytes: Buffer | string, n: number): void {
    socket.write(Buffer.from(bytes).subarray(0, n), () => socket.destroy());
  }

  /** The bytes of the chunk `req` asks for; undefined when it is denied or past the end. */
  private body(req: GetChunkRequest, corrupt: boolean): Buffer | undefined {
    if (!this.options.acceptAny && !this.accepted.has(req.capability)) return undefined;
    const offset = req.index * this.chunkSize;
    if (offset >= this.data.length) return undefined;
    const body = Buffer.from(this.data.subarray(offset, offset + this.chunkSize));
    if (corrupt) body[body.length >> 1] ^= 0xff;
    return body;
  }

  private answer(req: GetChunkRequest, answer: ChunkAnswer): Buffer | string {
    if (answer.kind === 'raw') return answer.bytes;
    if (answer.kind === 'err') return `ERR ${answer.code} ${answer.message}\n`;
    if (!this.options.acceptAny && !this.accepted.has(req.capability))
      return `ERR ${ErrorCode.Denied} no valid capability\n`;
    const body = this.body(req, answer.kind === 'corrupt');
    if (!body) return `ERR ${ErrorCode.NoSuchChunk} no chunk ${req.index}\n`;
    return Buffer.concat([Buffer.from(`${formatChunkHeader(req.index, body.length)}\n`), body]);
  }
}

/** A port on 127.0.0.1 that nothing listens on (was free a moment ago). */
export async function unusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
