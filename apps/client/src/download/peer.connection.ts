import {
  ErrorCode,
  excerpt,
  formatBitfieldRequest,
  formatGetChunk,
  formatHostPort,
  HELLO_LINE,
  HELLO_REPLY,
  isHaveLine,
  parseBitfieldReply,
  parseChunkHeader,
  parseHaveLine,
  parseReplyHeader,
} from '@app/protocol';
import {
  connectTls,
  FingerprintMismatchError,
  seederVerifier,
  StartTlsRefusedError,
  startTlsClient,
  TlsConnectError,
  TlsHandshakeError,
} from '@app/tls';
import * as net from 'node:net';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { PeerError } from './download.errors';
import { PeerReplyReader } from './peer-reply.reader';

/** Chunk headers and `ERR` lines are short; anything longer is not a seeder talking. */
export const MAX_PEER_LINE_BYTES = 8 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** Characters of a malformed reply kept (escaped) in the error, and of a seeder's refusal message. */
const MAX_SHOWN_EXCERPT = 24;
const MAX_SHOWN_MESSAGE = 120;
export const DEFAULT_INACTIVITY_TIMEOUT_MS = 15_000;

export interface PeerConnectOptions {
  /** Give up connecting after this long (and on the answer to the HELLO: the seeder then speaks the seed form). */
  readonly connectTimeoutMs?: number;
  /** With requests outstanding, this long without a byte from the seeder fails them all and closes. */
  readonly inactivityTimeoutMs?: number;
  /**
   * The fingerprint the tracker lists for the seeder: the connection then starts with `STARTTLS`, the seeder's
   * certificate must be exactly this one (else it fails with an `identity` error, nothing sent past the handshake),
   * and the HELLO and everything after it go inside TLS. Without it, plain text as before.
   */
  readonly fingerprint?: string;
  /** Who the seeder is, for messages (`alice at 127.0.0.1:7001`); default its address. */
  readonly label?: string;
}

/**
 * How a seeder speaks: `extended` (this project's: `HELLO p2p-share/2`, then
 * pipelined requests answered with `CHUNK` headers) or `seed` (one
 * `GET_CHUNK` per connection, answered with raw bytes).
 */
export type PeerForm = 'extended' | 'seed';

/** A way to fetch chunks from one seeder: one pipelined connection, or a connection per chunk. */
export interface ChunkLink {
  /** `host:port` of the seeder. */
  readonly address: string;
  /** Gets ready to fetch; resolves with the form the seeder turned out to speak. */
  connect(host: string, port: number, options?: PeerConnectOptions): Promise<PeerForm>;
  /** Chunk `index` of exactly `expectedLength` bytes, in a buffer from the link's pool; `item` names the file. */
  fetch(index: number, item: string, expectedLength: number): Promise<Buffer>;
  /** Closes everything; outstanding requests fail with a `closed` error. */
  close(): void;
}

/** What a seeder holds of the file: one byte per chunk (1: held), or `all` (a seeder that keeps no have-list). */
export type HeldChunks = Uint8Array | 'all';

interface PendingChunk {
  readonly kind: 'chunk';
  readonly index: number;
  readonly length: number;
  readonly resolve: (data: Buffer) => void;
  readonly reject: (err: PeerError) => void;
}

interface PendingBitfield {
  readonly kind: 'bitfield';
  readonly chunkCount: number;
  readonly resolve: (held: HeldChunks) => void;
  readonly reject: (err: PeerError) => void;
}

type Pending = PendingChunk | PendingBitfield;

/**
 * One TCP connection to a seeder's chunk server. `fetch` sends a
 * `GET_CHUNK` line at once, so several requests can be outstanding on the
 * socket; the seeder answers in order, and each answer settles the oldest
 * request. An `ERR` answer fails only its request; a bad answer, the
 * connection closing or the inactivity timeout fail every outstanding
 * request and close the socket for good.
 *
 * Bodies are read by the socket straight into a buffer from `pool` (give
 * it back with `pool.release` when done), with no copy and no other
 * allocation (over TLS, one copy: from the decrypted record into the body);
 * header and `ERR` lines go through a small reused scratch buffer (see
 * `PeerReplyReader`).
 *
 * `bitfield` asks for the seeder's have-list (in its place among the
 * requests); from its answer on, the `HAVE` lines the seeder pushes between
 * replies go to `onHave` and are never taken for a reply. A malformed
 * `BITFIELD` or `HAVE` line, or a `HAVE` before the have-list, is a protocol
 * error. A chunk a partial seeder lacks fails with a `refused` error of code
 * `NOT_HELD`.
 */
export class PeerConnection implements ChunkLink {
  private socket: net.Socket | undefined;
  /** Under TLS, the TCP connection it runs over (destroyed with it). */
  private raw: net.Socket | undefined;
  /** Connected over TLS (the seeder's certificate checked). */
  private secure = false;
  /** The answer to the HELLO being waited for. */
  private greeting: { resolve: (form: PeerForm) => void; reject: (err: PeerError) => void } | undefined;
  private readonly pool: ChunkBufferPool;
  private readonly pending: Pending[] = [];
  private readonly reader = new PeerReplyReader(
    {
      line: (line) => this.onLine(line),
      body: (data) => (this.settle() as PendingChunk).resolve(data),
      overflow: (limit) =>
        this.greeting ? this.greeted('seed') : this.protocolError(`sent a line longer than ${limit} bytes`),
    },
    MAX_PEER_LINE_BYTES,
  );
  private closedBy: PeerError | undefined;
  private inactivityTimeoutMs = DEFAULT_INACTIVITY_TIMEOUT_MS;
  private lastActivity = 0;
  private timer: NodeJS.Timeout | undefined;
  private peer = '?';
  /** Chunks of the file, once a have-list was received: `HAVE` lines are accepted from then on. */
  private haveChunks: number | undefined;
  /** Milliseconds from sending the HELLO to its answer: a round trip, once connected in the extended form. */
  helloRoundTripMs: number | undefined;
  private helloSentAt = 0;
  /** Chunks the seeder says it gained (a `HAVE` line's indexes). */
  onHave: ((indexes: number[]) => void) | undefined;

  constructor(options: { readonly pool?: ChunkBufferPool; readonly onHave?: (indexes: number[]) => void } = {}) {
    this.pool = options.pool ?? new ChunkBufferPool(0, 0);
    this.onHave = options.onHave;
  }

  /** `host:port` of the seeder. */
  get address(): string {
    return this.peer;
  }

  /** Requests sent and not yet answered. */
  get outstanding(): number {
    return this.pending.length;
  }

  /** True once connected over TLS, the seeder's certificate being the one listed. */
  get tls(): boolean {
    return this.secure;
  }

  get isOpen(): boolean {
    return this.socket !== undefined && this.closedBy === undefined;
  }

  /**
   * Opens the connection and sends `HELLO p2p-share/2`; resolves `extended`
   * once `OK 0 p2p-share/2` is back. An `ERR` answer rejects with a `connect`
   * `PeerError` carrying its code (as a refusal of the connection). Any other
   * answer, a close or reset without one, or no answer within the connect
   * timeout means the seeder speaks only the seed form: the connection is
   * closed and `seed` resolved (the caller goes on with a `SeedPeerConnection`;
   * our own seeders serve that form too, so the fallback is always safe).
   * Rejects with a `connect` `PeerError` when no connection can be made.
   */
  async connect(host: string, port: number, options: PeerConnectOptions = {}): Promise<PeerForm> {
    if (this.socket || this.closedBy) throw new Error('a PeerConnection connects once');
    this.peer = formatHostPort({ host, port });
    this.inactivityTimeoutMs = options.inactivityTimeoutMs ?? DEFAULT_INACTIVITY_TIMEOUT_MS;
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const socket = options.fingerprint
      ? await this.connectSecure(host, port, timeoutMs, options.fingerprint, options.label ?? this.peer)
      : await this.connectTcp(host, port, timeoutMs, true);
    const closedMeanwhile = this.closedBy as PeerError | undefined;
    if (closedMeanwhile) {
      socket.destroy();
      this.raw?.destroy();
      throw closedMeanwhile;
    }
    this.socket = socket;
    socket.setNoDelay(true);
    // a seed-form seeder may close or reset on a line it does not know: that too says it speaks the seed form
    // (not inside TLS: a seeder that speaks TLS is one of ours, and answers the HELLO)
    const lost = (err: PeerError) => (this.greeting && !this.secure ? this.greeted('seed') : this.abort(err));
    socket.on('error', (err) => lost(new PeerError('closed', `connection to ${this.peer} failed: ${err.message}`)));
    socket.on('end', () => lost(new PeerError('closed', `${this.peer} closed the connection`)));
    socket.on('close', () => lost(new PeerError('closed', `${this.peer} closed the connection`)));
    return new Promise<PeerForm>((resolve, reject) => {
      const timer = setTimeout(() => this.greeted('seed'), timeoutMs);
      this.greeting = {
        resolve: (form) => (clearTimeout(timer), resolve(form)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      this.helloSentAt = performance.now();
      socket.write(`${HELLO_LINE}\n`);
    });
  }

  /**
   * A TCP connection to the seeder. `inPlace`: each read lands where `reader` says (in the body being received, or
   * in its scratch buffer), with no copy; else the socket reads as usual (a connection STARTTLS upgrades).
   */
  private connectTcp(host: string, port: number, timeoutMs: number, inPlace: boolean): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port, ...(inPlace && { onread: this.inPlace() }) });
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
  }

  /** Reads that land where `reader` says: in the unfilled rest of the body being received, else its scratch buffer. */
  private inPlace(): net.OnReadOpts {
    return {
      buffer: () => this.reader.nextBuffer(),
      callback: (n: number, buf: Uint8Array) => {
        this.lastActivity = Date.now();
        this.reader.onRead(buf, n);
        return true;
      },
    };
  }

  /**
   * A TLS connection to the seeder, its certificate checked against `fingerprint` before anything is sent inside.
   * First with the handshake from the first byte, decrypted bytes landing in place (copied once, from the TLS
   * record into the body being received); should the seeder not take that handshake (an older seeder of ours, or
   * one refusing the connection with a line in clear), once more with `STARTTLS`, whose answer says why.
   * Rejects with a `PeerError`: `identity` for another certificate, `connect` when no connection is made, the
   * handshake fails or times out, or the seeder refuses (with its code, e.g. BUSY), `protocol` for an answer to
   * `STARTTLS` that is none (it was listed as speaking TLS).
   */
  private async connectSecure(
    host: string,
    port: number,
    timeoutMs: number,
    fingerprint: string,
    label: string,
  ): Promise<net.Socket> {
    const startedAt = performance.now();
    const verify = seederVerifier(label, fingerprint);
    try {
      const tls = await connectTls({
        host,
        port,
        peer: label,
        timeoutMs,
        verify,
        onread: this.inPlace(),
        onSocket: (s) => (this.raw = s),
      });
      this.raw = undefined;
      this.secure = true;
      return tls;
    } catch (err) {
      this.raw = undefined;
      if (this.closedBy) throw this.closedBy;
      if (!(err instanceof TlsHandshakeError) || err.timedOut) throw this.tlsFailure(err);
    }
    return this.connectStartTls(host, port, Math.max(1, timeoutMs - (performance.now() - startedAt)), verify, label);
  }

  /**
   * A TCP connection upgraded with `STARTTLS`, the seeder's certificate checked with `verify` before anything is
   * sent inside; its bytes are then copied once from each `data` event into the body being received (a socket
   * upgraded in place cannot read into the caller's buffers). Rejects as `connectSecure`.
   */
  private async connectStartTls(
    host: string,
    port: number,
    timeoutMs: number,
    verify: (fingerprint: string) => void,
    label: string,
  ): Promise<net.Socket> {
    const startedAt = performance.now();
    const raw = await this.connectTcp(host, port, timeoutMs, false);
    this.raw = raw;
    let tls: net.Socket;
    try {
      tls = await startTlsClient(raw, {
        peer: label,
        timeoutMs: Math.max(1, timeoutMs - (performance.now() - startedAt)),
        verify,
      });
    } catch (err) {
      raw.destroy();
      throw this.tlsFailure(err);
    }
    this.secure = true;
    tls.on('data', (chunk: Buffer) => {
      this.lastActivity = Date.now();
      this.reader.onData(chunk);
    });
    return tls;
  }

  /** Why TLS with the seeder failed, as a PeerError. */
  private tlsFailure(err: unknown): PeerError {
    if (err instanceof FingerprintMismatchError) return new PeerError('identity', err.message);
    if (err instanceof StartTlsRefusedError) {
      if (err.answer === '') return new PeerError('connect', `${this.peer} closed the connection instead of TLS`);
      if (err.answer.startsWith('ERR ')) {
        try {
          const reply = parseReplyHeader(err.answer);
          if (!reply.ok) {
            const why = `${reply.code} ${excerpt(reply.message, MAX_SHOWN_MESSAGE)}`;
            return new PeerError('connect', `${this.peer} refused the connection: ${why}`, reply.code);
          }
        } catch {
          // not a reply line: below
        }
      }
      return new PeerError(
        'protocol',
        `${this.peer} is listed as speaking TLS but answered STARTTLS with "${excerpt(err.answer, MAX_SHOWN_EXCERPT)}"`,
      );
    }
    if (err instanceof TlsConnectError) return new PeerError('connect', err.message);
    return new PeerError(
      'connect',
      `cannot connect to ${this.peer}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }

  /** The HELLO is answered (`extended`) or will not be (`seed`: the connection is closed). */
  private greeted(form: PeerForm): void {
    const greeting = this.greeting;
    if (!greeting) return;
    if (form === 'seed' && this.secure) {
      // inside TLS only one of ours answers, and it answers the HELLO: anything else is not our seeder
      return this.protocolError('did not answer our HELLO inside TLS');
    }
    this.greeting = undefined;
    if (form === 'seed') this.abort(new PeerError('closed', `${this.peer} speaks only the seed form`));
    else this.helloRoundTripMs = performance.now() - this.helloSentAt;
    greeting.resolve(form);
  }

  /**
   * Requests chunk `index` with `capability`; resolves with exactly
   * `expectedLength` bytes, in a buffer from the pool.
   */
  fetch(index: number, capability: string, expectedLength: number): Promise<Buffer> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    const socket = this.socket;
    if (!socket) return Promise.reject(new PeerError('closed', 'not connected'));
    return new Promise<Buffer>((resolve, reject) => {
      if (this.pending.length === 0) this.lastActivity = Date.now();
      this.pending.push({ kind: 'chunk', index, length: expectedLength, resolve, reject });
      socket.write(`${formatGetChunk({ index, capability })}\n`);
      this.armTimer();
    });
  }

  /**
   * Asks for the seeder's have-list of the file of `chunkCount` chunks (`BITFIELD <capability>`): resolves with one
   * byte per chunk, or `all` when the seeder does not know the request (`ERR UNKNOWN_COMMAND`: one of ours of an
   * older version, serving only whole files). Any other `ERR` rejects with a `refused` error; a reply for another
   * chunk count or with malformed bits is a protocol error.
   */
  bitfield(capability: string, chunkCount: number): Promise<HeldChunks> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    const socket = this.socket;
    if (!socket) return Promise.reject(new PeerError('closed', 'not connected'));
    return new Promise<HeldChunks>((resolve, reject) => {
      if (this.pending.length === 0) this.lastActivity = Date.now();
      this.pending.push({ kind: 'bitfield', chunkCount, resolve, reject });
      socket.write(`${formatBitfieldRequest(capability)}\n`);
      this.armTimer();
    });
  }

  /** Closes the socket; outstanding requests fail with a `closed` error. */
  close(): void {
    this.abort(new PeerError('closed', `connection to ${this.peer} closed`));
  }

  private onLine(line: string): void {
    if (this.greeting) {
      if (line === HELLO_REPLY) return this.greeted('extended');
      if (!line.startsWith('ERR ')) return this.greeted('seed');
    }
    if (isHaveLine(line)) return this.onHaveLine(line);
    const head = this.pending[0];
    if (line.startsWith('ERR')) {
      let reply;
      try {
        reply = parseReplyHeader(line);
      } catch {
        return this.malformed(line);
      }
      if (reply.ok) return this.malformed(line);
      if (!head) {
        // e.g. `ERR BUSY` on connecting, before the connection is closed
        const err = `${this.peer} refused the connection: ${reply.code} ${excerpt(reply.message, MAX_SHOWN_MESSAGE)}`;
        return this.abort(new PeerError('connect', err, reply.code));
      }
      const what = head.kind === 'chunk' ? `chunk ${head.index}` : 'its have-list';
      if (head.kind === 'bitfield' && reply.code === ErrorCode.UnknownCommand) {
        // one of ours of an older version: it serves only files it holds whole
        return (this.settle() as PendingBitfield).resolve('all');
      }
      this.settle().reject(
        new PeerError(
          'refused',
          `${this.peer} refused ${what}: ${reply.code} ${excerpt(reply.message, MAX_SHOWN_MESSAGE)}`,
          reply.code,
        ),
      );
      return;
    }
    if (!head) return this.protocolError('sent data with no request outstanding');
    if (head.kind === 'bitfield') {
      const held = parseBitfieldReply(line, head.chunkCount);
      if (!held) return this.malformed(line);
      this.haveChunks = head.chunkCount;
      return (this.settle() as PendingBitfield).resolve(held);
    }
    let header: { index: number; length: number };
    try {
      header = parseChunkHeader(line);
    } catch {
      return this.malformed(line);
    }
    if (header.index !== head.index || header.length !== head.length) {
      return this.protocolError(
        `answered chunk ${header.index} of ${header.length} bytes, expected chunk ${head.index} of ${head.length}`,
      );
    }
    if (header.length === 0) return (this.settle() as PendingChunk).resolve(Buffer.alloc(0));
    this.reader.expectBody(this.pool.acquire(header.length));
  }

  /** A `HAVE` the seeder pushed between replies: valid only after its have-list, and only for chunks of the file. */
  private onHaveLine(line: string): void {
    if (this.haveChunks === undefined) return this.protocolError('sent HAVE before its have-list');
    const indexes = parseHaveLine(line, this.haveChunks);
    if (!indexes) return this.malformed(line);
    this.onHave?.(indexes);
  }

  /** Removes the oldest request, to be settled by the caller. */
  private settle(): Pending {
    const head = this.pending.shift()!;
    if (this.pending.length === 0) this.disarmTimer();
    return head;
  }

  /**
   * A line that is no answer to what was asked. Its bytes are the seeder's, not ours: never echoed, only a
   * short escaped excerpt of its start is kept.
   */
  private malformed(line: string): void {
    this.protocolError(`sent a malformed reply ("${excerpt(line, MAX_SHOWN_EXCERPT)}")`);
  }

  private protocolError(what: string): void {
    this.abort(new PeerError('protocol', `${this.peer} ${what}`));
  }

  private abort(err: PeerError): void {
    if (this.closedBy) return;
    this.closedBy = err;
    // an `ERR` answer to the HELLO, or a local close, while it is awaited
    const greeting = this.greeting;
    this.greeting = undefined;
    greeting?.reject(err);
    this.disarmTimer();
    // destroying the socket closes its handle at once: no read lands in the body after this
    this.socket?.destroy();
    this.raw?.destroy();
    const body = this.reader.stop();
    if (body) this.pool.release(body);
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
