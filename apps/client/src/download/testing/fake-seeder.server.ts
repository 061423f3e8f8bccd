import { CHUNK_SIZE } from '@app/chunking';
import { ErrorCode, formatChunkHeader, FrameDecoder, GetChunkRequest, parseGetChunk } from '@app/protocol';
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
  | { readonly kind: 'raw'; readonly bytes: Buffer | string };

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
}

/**
 * An in-process chunk server on a free 127.0.0.1 port speaking the peer
 * protocol for one in-memory file; `decide` makes it misbehave per request.
 */
export class FakeSeeder {
  readonly requests: SeenRequest[] = [];
  connections = 0;
  /** `Date.now()` of each connection accepted. */
  readonly connectedAt: number[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  private readonly chunkSize: number;
  readonly capability: string;
  /** Capabilities it serves for; starts with `capability`, tests add and remove. */
  readonly accepted = new Set<string>();
  private waiters: { count: number; resolve: () => void }[] = [];

  constructor(
    private readonly data: Buffer,
    private readonly options: FakeSeederOptions = {},
  ) {
    this.chunkSize = options.chunkSize ?? CHUNK_SIZE;
    this.capability = options.capability ?? 'test-capability';
    this.accepted.add(this.capability);
    this.server = net.createServer((socket) => this.accept(socket));
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
    if (this.options.busy || this.connections <= (this.options.busyConnections ?? 0)) {
      socket.end(`ERR ${ErrorCode.Busy} serving 0 connections already; try later\n`);
      return;
    }
    const decoder = new FrameDecoder();
    let stalled = false;
    socket.on('data', (bytes: Buffer) => {
      decoder.push(bytes);
      for (let frame = decoder.next(); frame && !socket.destroyed; frame = decoder.next()) {
        if (frame.type !== 'line') continue;
        let req: GetChunkRequest;
        try {
          req = parseGetChunk(frame.line);
        } catch {
          socket.write(`ERR ${ErrorCode.BadSyntax} bad request\n`);
          continue;
        }
        const seen = { ...req, n: this.requests.length + 1 };
        this.requests.push(seen);
        this.waiters = this.waiters.filter((w) => (this.requests.length >= w.count ? (w.resolve(), false) : true));
        if (stalled) continue;
        const answer = this.options.decide?.(seen) ?? { kind: 'serve' };
        if (answer.kind === 'stall') stalled = true;
        else if (answer.kind === 'vanish') this.vanish();
        else socket.write(this.answer(req, answer));
      }
    });
  }

  private answer(req: GetChunkRequest, answer: ChunkAnswer): Buffer | string {
    if (answer.kind === 'raw') return answer.bytes;
    if (answer.kind === 'err') return `ERR ${answer.code} ${answer.message}\n`;
    if (!this.accepted.has(req.capability)) return `ERR ${ErrorCode.Denied} no valid capability\n`;
    const offset = req.index * this.chunkSize;
    if (offset >= this.data.length) return `ERR ${ErrorCode.NoSuchChunk} no chunk ${req.index}\n`;
    const body = Buffer.from(this.data.subarray(offset, offset + this.chunkSize));
    if (answer.kind === 'corrupt') body[body.length >> 1] ^= 0xff;
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
