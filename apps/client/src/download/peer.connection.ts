import { formatGetChunk, formatHostPort, FrameDecoder, parseChunkHeader, parseReplyHeader } from '@app/protocol';
import * as net from 'node:net';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { PeerError } from './download.errors';

/** Chunk headers and `ERR` lines are short; anything longer is not a seeder talking. */
export const MAX_PEER_LINE_BYTES = 8 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_INACTIVITY_TIMEOUT_MS = 15_000;

export interface PeerConnectOptions {
  /** Give up connecting after this long. */
  readonly connectTimeoutMs?: number;
  /** With requests outstanding, this long without a byte from the seeder fails them all and closes. */
  readonly inactivityTimeoutMs?: number;
}

/** Socket reads land in one reused buffer of this size per connection. */
const READ_BUFFER_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

interface Pending {
  readonly index: number;
  readonly length: number;
  readonly resolve: (data: Buffer) => void;
  readonly reject: (err: PeerError) => void;
}

/** The body being received: the oldest request's header has arrived. */
interface Body {
  readonly target: Buffer;
  filled: number;
}

/**
 * One TCP connection to a seeder's chunk server. `fetch` sends a
 * `GET_CHUNK` line at once, so several requests can be outstanding on the
 * socket; the seeder answers in order, and each answer settles the oldest
 * request. An `ERR` answer fails only its request; a bad answer, the
 * connection closing or the inactivity timeout fail every outstanding
 * request and close the socket for good.
 *
 * Socket reads go into one reused buffer and bodies are copied straight
 * into a buffer from `pool` (give it back with `pool.release` when done), so
 * receiving a chunk allocates nothing else; header and `ERR` lines go
 * through a `FrameDecoder`.
 */
export class PeerConnection {
  private socket: net.Socket | undefined;
  private readonly pool: ChunkBufferPool;
  private readonly decoder = new FrameDecoder(MAX_PEER_LINE_BYTES);
  private readonly pending: Pending[] = [];
  private body: Body | undefined;
  private closedBy: PeerError | undefined;
  private inactivityTimeoutMs = DEFAULT_INACTIVITY_TIMEOUT_MS;
  private lastActivity = 0;
  private timer: NodeJS.Timeout | undefined;
  private peer = '?';

  constructor(options: { readonly pool?: ChunkBufferPool } = {}) {
    this.pool = options.pool ?? new ChunkBufferPool(0, 0);
  }

  /** `host:port` of the seeder. */
  get address(): string {
    return this.peer;
  }

  /** Requests sent and not yet answered. */
  get outstanding(): number {
    return this.pending.length;
  }

  get isOpen(): boolean {
    return this.socket !== undefined && this.closedBy === undefined;
  }

  /** Opens the connection; rejects with a `connect` `PeerError`. */
  async connect(host: string, port: number, options: PeerConnectOptions = {}): Promise<void> {
    if (this.socket || this.closedBy) throw new Error('a PeerConnection connects once');
    this.peer = formatHostPort({ host, port });
    this.inactivityTimeoutMs = options.inactivityTimeoutMs ?? DEFAULT_INACTIVITY_TIMEOUT_MS;
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({
        host,
        port,
        onread: {
          buffer: readBuffer,
          callback: (n: number) => {
            this.onBytes(readBuffer, n);
            return true;
          },
        },
      });
      const fail = (message: string): void => {
        clearTimeout(timer);
        s.destroy();
        reject(new PeerError('connect', `cannot connect to ${this.peer}: ${message}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      s.once('error', (err) => fail(err.message));
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
    });
    const closedMeanwhile = this.closedBy as PeerError | undefined;
    if (closedMeanwhile) {
      socket.destroy();
      throw closedMeanwhile;
    }
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', (err) =>
      this.abort(new PeerError('closed', `connection to ${this.peer} failed: ${err.message}`)),
    );
    socket.on('end', () => this.abort(new PeerError('closed', `${this.peer} closed the connection`)));
    socket.on('close', () => this.abort(new PeerError('closed', `${this.peer} closed the connection`)));
  }

  /**
   * Requests chunk `index` of `filePath`; resolves with exactly
   * `expectedLength` bytes, in a buffer from the pool.
   */
  fetch(index: number, filePath: string, expectedLength: number): Promise<Buffer> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    const socket = this.socket;
    if (!socket) return Promise.reject(new PeerError('closed', 'not connected'));
    return new Promise<Buffer>((resolve, reject) => {
      if (this.pending.length === 0) this.lastActivity = Date.now();
      this.pending.push({ index, length: expectedLength, resolve, reject });
      socket.write(`${formatGetChunk({ index, filePath })}\n`);
      this.armTimer();
    });
  }

  /** Closes the socket; outstanding requests fail with a `closed` error. */
  close(): void {
    this.abort(new PeerError('closed', `connection to ${this.peer} closed`));
  }

  /** `n` bytes just read into `bytes`, which is reused for the next read: nothing may keep it. */
  private onBytes(bytes: Buffer, n: number): void {
    this.lastActivity = Date.now();
    let at = 0;
    while (at < n && !this.closedBy) {
      const body = this.body;
      if (body) {
        const take = Math.min(body.target.length - body.filled, n - at);
        bytes.copy(body.target, body.filled, at, at + take);
        body.filled += take;
        at += take;
        if (body.filled === body.target.length) {
          this.body = undefined;
          this.settle().resolve(body.target);
        }
        continue;
      }
      // a line: feed the decoder up to its newline only, so a body that follows is copied directly
      const newline = bytes.subarray(0, n).indexOf(NEWLINE, at);
      const end = newline < 0 ? n : newline + 1;
      this.decoder.push(Buffer.from(bytes.subarray(at, end)));
      at = end;
      for (let frame = this.decoder.next(); frame && !this.closedBy; frame = this.decoder.next()) {
        if (frame.type === 'overflow') return this.protocolError(`sent a line longer than ${frame.limit} bytes`);
        if (frame.type === 'line') this.onLine(frame.line);
      }
    }
  }

  private onLine(line: string): void {
    const head = this.pending[0];
    if (line.startsWith('ERR')) {
      let reply;
      try {
        reply = parseReplyHeader(line);
      } catch {
        return this.protocolError(`sent a bad line: ${line.slice(0, 80)}`);
      }
      if (reply.ok) return this.protocolError(`sent a bad line: ${line.slice(0, 80)}`);
      if (!head) {
        // e.g. `ERR BUSY` on connecting, before the connection is closed
        const err = `${this.peer} refused the connection: ${reply.code} ${reply.message}`;
        return this.abort(new PeerError('connect', err, reply.code));
      }
      this.settle().reject(
        new PeerError(
          'refused',
          `${this.peer} refused chunk ${head.index}: ${reply.code} ${reply.message}`,
          reply.code,
        ),
      );
      return;
    }
    if (!head) return this.protocolError('sent data with no request outstanding');
    let header: { index: number; length: number };
    try {
      header = parseChunkHeader(line);
    } catch {
      return this.protocolError(`sent a bad line: ${line.slice(0, 80)}`);
    }
    if (header.index !== head.index || header.length !== head.length) {
      return this.protocolError(
        `answered chunk ${header.index} of ${header.length} bytes, expected chunk ${head.index} of ${head.length}`,
      );
    }
    if (header.length === 0) return this.settle().resolve(Buffer.alloc(0));
    this.body = { target: this.pool.acquire(header.length), filled: 0 };
  }

  /** Removes the oldest request, to be settled by the caller. */
  private settle(): Pending {
    const head = this.pending.shift()!;
    if (this.pending.length === 0) this.disarmTimer();
    return head;
  }

  private protocolError(what: string): void {
    this.abort(new PeerError('protocol', `${this.peer} ${what}`));
  }

  private abort(err: PeerError): void {
    if (this.closedBy) return;
    this.closedBy = err;
    this.disarmTimer();
    this.socket?.destroy();
    if (this.body) this.pool.release(this.body.target);
    this.body = undefined;
    const pending = this.pending.splice(0);
    for (const p of pending) p.reject(err);
  }

  private armTimer(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastActivity + this.inactivityTimeoutMs - Date.now());
    this.timer = setTimeout(() => this.onTimer(), wait);
    this.timer.unref();
  }

  private disarmTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.pending.length === 0 || this.closedBy) return;
    if (Date.now() - this.lastActivity >= this.inactivityTimeoutMs) {
      const waiting = this.pending.length;
      this.abort(
        new PeerError(
          'timeout',
          `${this.peer} sent nothing for ${this.inactivityTimeoutMs} ms with ${waiting} request(s) outstanding`,
        ),
      );
      return;
    }
    this.armTimer();
  }
}
