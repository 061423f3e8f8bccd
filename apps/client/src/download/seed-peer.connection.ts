import { formatGetChunk, formatHostPort } from '@app/protocol';
import * as net from 'node:net';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { PeerError } from './download.errors';
import {
  ChunkLink,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_INACTIVITY_TIMEOUT_MS,
  PeerConnectOptions,
  PeerForm,
} from './peer.connection';

/** Where reads go once a chunk is complete, should the socket read again before it is destroyed. */
const SPARE = Buffer.alloc(64);

/** One chunk being fetched over its own connection. */
interface SeedFetch {
  fail(err: PeerError): void;
}

/**
 * Fetches chunks from a seeder that speaks the seed form (README-seed.md):
 * one TCP connection per chunk; `GET_CHUNK <i> <item>\n` is sent and exactly
 * the chunk's length of raw bytes is read straight into a buffer from `pool`,
 * then the connection is closed. The seed form has no header and no refusal
 * line: a close before every byte came, or no byte for the inactivity
 * timeout, fails that chunk (`failed`); a connection that cannot be made
 * fails with `connect`. Several fetches may run at once, each on its own
 * connection: the caller bounds how many.
 */
export class SeedPeerConnection implements ChunkLink {
  private readonly pool: ChunkBufferPool;
  private readonly fetches = new Set<SeedFetch>();
  private host: string | undefined;
  private port = 0;
  private peer = '?';
  private connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS;
  private inactivityTimeoutMs = DEFAULT_INACTIVITY_TIMEOUT_MS;
  private closedBy: PeerError | undefined;

  constructor(options: { readonly pool?: ChunkBufferPool } = {}) {
    this.pool = options.pool ?? new ChunkBufferPool(0, 0);
  }

  get address(): string {
    return this.peer;
  }

  /** Chunks being fetched now (one connection each). */
  get outstanding(): number {
    return this.fetches.size;
  }

  get isOpen(): boolean {
    return this.host !== undefined && this.closedBy === undefined;
  }

  /** Nothing to open ahead: each chunk gets its own connection. Resolves `seed`. */
  connect(host: string, port: number, options: PeerConnectOptions = {}): Promise<PeerForm> {
    if (this.host !== undefined || this.closedBy)
      return Promise.reject(new Error('a SeedPeerConnection connects once'));
    this.host = host;
    this.port = port;
    this.peer = formatHostPort({ host, port });
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.inactivityTimeoutMs = options.inactivityTimeoutMs ?? DEFAULT_INACTIVITY_TIMEOUT_MS;
    return Promise.resolve('seed');
  }

  fetch(index: number, item: string, expectedLength: number): Promise<Buffer> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    const host = this.host;
    if (host === undefined) return Promise.reject(new PeerError('closed', 'not connected'));
    if (expectedLength === 0) return Promise.resolve(Buffer.alloc(0));
    return new Promise<Buffer>((resolve, reject) => {
      const target = this.pool.acquire(expectedLength);
      let filled = 0;
      let connected = false;
      let lastActivity = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const fetch: SeedFetch = { fail: (err) => settle(err) };
      const settle = (err?: PeerError): void => {
        if (!this.fetches.delete(fetch)) return;
        clearTimeout(timer);
        // destroying closes the handle at once: no read lands in `target` after this
        socket.destroy();
        if (err) {
          this.pool.release(target);
          reject(err);
        } else {
          resolve(target);
        }
      };
      const watch = (): void => {
        const limit = connected ? this.inactivityTimeoutMs : this.connectTimeoutMs;
        const wait = lastActivity + limit - Date.now();
        if (wait > 0) {
          timer = setTimeout(watch, wait);
          timer.unref();
          return;
        }
        settle(
          connected
            ? new PeerError(
                'failed',
                `${this.peer} sent nothing for ${limit} ms of chunk ${index} (${filled} bytes in)`,
              )
            : new PeerError('connect', `cannot connect to ${this.peer}: timed out after ${limit} ms`),
        );
      };
      const early = (): PeerError =>
        new PeerError(
          'failed',
          filled === 0
            ? `${this.peer} closed the connection without sending chunk ${index}`
            : `${this.peer} closed the connection after ${filled} of ${expectedLength} bytes of chunk ${index}`,
        );
      const socket = net.connect({
        host,
        port: this.port,
        onread: {
          buffer: () => (filled < target.length ? target.subarray(filled) : SPARE),
          callback: (n: number, buf: Uint8Array) => {
            if (buf === SPARE || n <= 0) return true;
            filled += n;
            lastActivity = Date.now();
            if (filled >= target.length) settle();
            return true;
          },
        },
      });
      this.fetches.add(fetch);
      socket.once('connect', () => {
        connected = true;
        lastActivity = Date.now();
        socket.setNoDelay(true);
        socket.write(`${formatGetChunk({ index, capability: item })}\n`);
        // from now on the inactivity timeout runs, not the connect timeout
        clearTimeout(timer);
        watch();
      });
      socket.on('error', (err) =>
        settle(connected ? early() : new PeerError('connect', `cannot connect to ${this.peer}: ${err.message}`)),
      );
      socket.on('end', () => settle(early()));
      socket.on('close', () => settle(early()));
      watch();
    });
  }

  close(): void {
    if (!this.closedBy) this.closedBy = new PeerError('closed', `connection to ${this.peer} closed`);
    for (const fetch of [...this.fetches]) fetch.fail(this.closedBy);
  }
}
