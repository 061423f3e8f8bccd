/*
 * The seeding side of the client-to-client protocol (see `@app/protocol` peer.ts
 * and hello.ts), in two forms chosen by a connection's first line:
 *
 * - extended: `HELLO p2p-share/2` -> `OK 0 p2p-share/2`, then pipelined
 *
 *     GET_CHUNK <chunk_index> <capability>   ->   CHUNK <chunk_index> <length>\n<length bytes>
 *                                            or   ERR <CODE> <message>\n
 *     BITFIELD <capability>                  ->   BITFIELD <chunk_count> <bits>\n
 *                                            or   ERR <CODE> <message>\n
 *
 *   and, after a BITFIELD of a download in progress (a PartialShares entry),
 *   `HAVE <i>[,<j>...]` lines between whole replies as the download gains
 *   chunks. A chunk such a download lacks is answered `ERR NOT_HELD` at once.
 *
 * - seed (any other first line): that line is the one request of the
 *   connection; a chunk is answered with exactly its raw bytes and the
 *   connection is ended, anything else with no byte at all and a close.
 *
 * A chunk is served only for a capability the CapabilityVerifier honours
 * (signed by the trackers' key, unexpired, naming the user this client is
 * logged in as) for a file the ShareRegistry holds under that user, group and
 * SHA-1, or, in the extended form only, for a download in progress that
 * PartialShares holds under them (seed-form peers never meet one: they learn
 * of no partial seeder). Everything else, a path, a forged, altered or expired capability, one
 * for another seeder or for a file not shared here, gets the same `DENIED`
 * line, so that nobody without a capability learns which files exist. Nothing
 * the request names is ever looked up on the filesystem.
 */
import { chunkRange, CHUNK_SIZE, planChunks } from '@app/chunking';
import {
  errReply,
  ErrorCode,
  ErrReply,
  formatChunkHeader,
  formatHostPort,
  formatReply,
  Frame,
  FrameDecoder,
  GetChunkRequest,
  formOfFirstBytes,
  HELLO,
  HELLO_LINE,
  HELLO_REPLY,
  HELLO_START,
  formatBitfieldReply,
  formatHaveLines,
  parseGetChunk,
  parsePeerRequest,
  PeerRequest,
  ProtocolError,
  STARTTLS,
  STARTTLS_START,
  STARTTLS_START_CRLF,
} from '@app/protocol';
import { acceptTls, serverContext, sniffStartTls } from '@app/tls';
import { Inject, Injectable, Logger, OnApplicationShutdown, Optional } from '@nestjs/common';
import { closeSync, fstatSync, openSync, read } from 'node:fs';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { SecureContext, TLSSocket } from 'node:tls';
import { Observable, Subject } from 'rxjs';
import { RatePacer } from '../common/rate-pacer';
import { ClientIdentityService } from '../config/client-identity.service';
import { CapabilityVerifier } from './capability.verifier';
import { PartialShare, PartialShares } from './partial-shares';
import { ChunkServerListenError } from './seeding.errors';
import { ConnectionWatch, DEFAULT_SEEDER_LIMITS, SeederLimits, SeederPolicy } from './seeder.policy';
import {
  ChunkServerOptions,
  DEFAULT_HAVE_COALESCE_MS,
  DEFAULT_PEER_MAX_LINE_BYTES,
  SEEDING_OPTIONS,
} from './seeding.tokens';
import { ShareRegistry } from './share.registry';
import { identityFromStats, OPEN_SHARED_FLAGS, sameIdentity, SharedFile } from './shared-file';

/** A chunk read and ready to send, or the error line to send instead. */
export type ChunkAnswer =
  { readonly ok: true; readonly index: number; readonly data: Buffer; readonly share?: ShareKey } | ErrReply;

/** A file as the swarm names it: its group and its whole-file hash (a full share or a download in progress). */
export interface ShareKey {
  readonly groupId: string;
  readonly fileHash: string;
}

const shareKeyText = (groupId: string, fileHash: string): string => `${groupId}\n${fileHash}`;

/** A `BITFIELD` honoured: of a full share (every chunk held), or of a download in progress. */
interface BitfieldAnswer {
  readonly ok: true;
  readonly kind: 'bitfield';
  readonly capability: string;
  readonly chunkCount: number;
  /** The download in progress; undefined for a full share. */
  readonly partial?: PartialShare;
}

/** What one request of a connection is answered with. */
type Answer = ChunkAnswer | BitfieldAnswer;

const isBitfield = (a: Answer): a is BitfieldAnswer => a.ok && 'kind' in a;

/** Chunk-sized read buffers kept for reuse, over all connections. */
const MAX_FREE_BUFFERS = 16;

/** Stop reading requests from a connection while this many bytes of them wait. */
const PAUSE_BYTES = 64 * 1024;
/** Longest piece of a parse error quoted back. */
const MAX_QUOTED = 200;

/** The one answer to every request without a capability this seeder honours, whatever it names. */
export const DENIED_REPLY: ErrReply = errReply(ErrorCode.Denied, 'no valid capability for a file shared here');

/** A connection being turned away gets this long to take its `ERR` line before it is destroyed. */
const REFUSAL_GRACE_MS = 1_000;
/** A connection refused before its first line waits this long for it, to learn which form to refuse it in. */
const FIRST_LINE_WAIT_MS = 1_000;
/** A seed-form connection whose chunk is handed to the kernel is destroyed after this, should the peer not close. */
const SEED_LINGER_MS = 5_000;

/** A request line that starts so is a HELLO (checked on every request: built once). */
const HELLO_WORD = `${HELLO} `;

/** How a connection speaks: decided by its first line. */
type Form = 'unknown' | 'seed' | 'extended';

/**
 * The `HAVE` lines of one extended connection: after a `BITFIELD` of a
 * download in progress, every chunk it gains, gathered for `coalesceMs`
 * and written as one line. One file is watched per connection, the one of its
 * last `BITFIELD`. Lines are written from a timer, never from inside the
 * synchronous write of a reply, so they always fall between whole replies.
 */
class HaveFeed {
  private share: PartialShare | undefined;
  private unsubscribe: (() => void) | undefined;
  private pending: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly state: ConnectionForm,
    private readonly coalesceMs: number,
  ) {}

  /**
   * From now on, tells the peer of the chunks `share` gains (none: of
   * nothing). Called as a have-list of it is written: chunks gathered and not
   * yet told are in that list, so they are not told again.
   */
  watch(share: PartialShare | undefined): void {
    if (share === this.share) {
      this.pending = [];
      clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    this.stop();
    this.share = share;
    this.unsubscribe = share?.onHeld((index) => this.gained(index));
  }

  /** Stops for good (the connection closed); no listener is left behind. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.share = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = [];
  }

  private gained(index: number): void {
    this.pending.push(index);
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.coalesceMs);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    const indexes = this.pending;
    this.pending = [];
    const s = this.socket;
    if (this.state.closing || s.destroyed || !s.writable || s.writableEnded) return;
    for (const line of formatHaveLines(indexes)) s.write(`${line}\n`);
  }
}

/** What the chunk server knows of one connection's form. */
interface ConnectionForm {
  form: Form;
  /** Its first bytes (up to `FIRST_BYTES_KEPT`), while the form is unknown. */
  head: Buffer;
  /** Being turned away: no request is answered any more. */
  closing: boolean;
  /** Where its requests are read and answered: the TCP socket, or the TLS socket once it asked for TLS. */
  socket: Socket;
  /** It sent `STARTTLS` and the TLS handshake has not finished yet. */
  handshaking: boolean;
}

/**
 * First bytes that are answered in the extended form when the connection is refused: a HELLO, or `STARTTLS`
 * (a peer that asked for TLS is one of ours: it gets the `ERR` line, in clear, then the close).
 */
const FRAMED_STARTS = [HELLO_START, STARTTLS_START, STARTTLS_START_CRLF];
const FIRST_BYTES_KEPT = Math.max(...FRAMED_STARTS.map((b) => b.length));

/** The form a connection's first bytes announce (undefined while they may still become `HELLO ` or `STARTTLS`). */
const formOf = (head: Buffer, final = false) => formOfFirstBytes(head, FRAMED_STARTS, final);

function keepHead(state: ConnectionForm, bytes: Buffer): void {
  if (state.head.length >= FIRST_BYTES_KEPT) return;
  const take = bytes.subarray(0, FIRST_BYTES_KEPT - state.head.length);
  state.head = Buffer.concat([state.head, take]);
}

/** Open errors that mean the shared file is no longer what was shared. */
const GONE_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EACCES', 'EPERM', 'ENXIO', 'EISDIR']);

function listenFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address in use';
    case 'EACCES':
      return 'permission denied';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    default:
      return err.message;
  }
}

/** `fs.read` as a promise of the bytes read (one request to the libuv pool, no FileHandle around it). */
function readAt(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, at, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** The limits of `options`, defaults for those unset. */
export function seederLimits(options: ChunkServerOptions): SeederLimits {
  const d = DEFAULT_SEEDER_LIMITS;
  return {
    maxConnections: options.maxConnections ?? d.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? d.maxConnectionsPerAddress,
    requestTimeoutMs: options.requestTimeoutMs ?? d.requestTimeoutMs,
    lineTimeoutMs: options.lineTimeoutMs ?? d.lineTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? d.idleTimeoutMs,
  };
}

/**
 * Sends one `ERR` line (none without `reply`: the seed form's refusal) and
 * closes. What the peer sends meanwhile is read and dropped (closing on unread
 * bytes would reset the connection, and the peer could lose the line); a peer
 * that has not closed its side within a second is cut off.
 */
function refuse(socket: Socket, reply?: ErrReply): void {
  if (socket.destroyed) return;
  if (!socket.writable) return void socket.destroy();
  const timer = setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.removeAllListeners('data');
  socket.on('data', () => undefined);
  socket.resume();
  // once both sides have ended (allowHalfOpen), the socket closes by itself
  if (reply) socket.end(formatReply(reply));
  else socket.end();
}

/**
 * Refuses a connection whose form is not known yet: waits up to
 * FIRST_LINE_WAIT_MS for its first bytes; `HELLO ` gets the `ERR` line as the
 * answer to the HELLO, anything else (or nothing) a close without a byte.
 */
function refuseOnFirstLine(socket: Socket, reply: ErrReply, head: Buffer = Buffer.alloc(0)): void {
  if (socket.destroyed) return;
  socket.removeAllListeners('data');
  let seen = head;
  let done = false;
  const decide = (form: Exclude<Form, 'unknown'>) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    refuse(socket, form === 'extended' ? reply : undefined);
  };
  const onData = (bytes: Buffer) => {
    if (seen.length < FIRST_BYTES_KEPT) seen = Buffer.concat([seen, bytes.subarray(0, FIRST_BYTES_KEPT)]);
    const form = formOf(seen);
    if (form) decide(form);
  };
  const timer = setTimeout(() => decide('seed'), FIRST_LINE_WAIT_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => decide(formOf(seen, true) ?? 'seed'));
  const known = formOf(seen);
  if (known) return decide(known);
  socket.on('data', onData);
  socket.resume();
}

/** Resolves on 'drain' or 'close', whichever comes first, and leaves no listener behind. */
function drained(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * Serves chunks of shared files on the client's `IP:PORT`. Requests on one
 * connection are answered strictly in order; at most two chunks per
 * connection are in memory (the next is read from disk while the previous
 * one is still being sent, and written once it has drained).
 */
@Injectable()
export class ChunkServer implements OnApplicationShutdown {
  private readonly logger = new Logger(ChunkServer.name);
  private readonly maxLineBytes: number;
  /** Connection limits and deadlines: who gets a slot, and for how long (made on start: options are read late). */
  private policy = new SeederPolicy();
  private server: Server | undefined;
  /** Every open socket, served or being turned away. */
  private readonly sockets = new Set<Socket>();
  /** The upload cap, shared in turn between connections (key: the socket). */
  private readonly pacer = new RatePacer();
  /** Set by `setUploadLimit`: `start` then keeps it rather than the option's. */
  private limitSet = false;
  private uploaded = 0;
  /** Chunk bytes sent per file (key: shareKeyText), full shares and downloads in progress alike. */
  private readonly uploadedPerShare = new Map<string, number>();
  /** Connections admitted and open. */
  private readonly watches = new Set<ConnectionWatch>();
  private readonly partials: PartialShares;
  /** Request loops still running (each may hold an open file until its read ends). */
  private readonly pumps = new Set<Promise<void>>();
  private readonly changed = new Subject<SharedFile>();
  /** Free chunk-sized buffers: a chunk is read into one and it comes back once the socket has sent it. */
  private readonly freeBuffers: Buffer[] = [];
  private readonly reported = new WeakSet<SharedFile>();
  /** The TLS settings with the client's identity, made on the first `STARTTLS` and kept. */
  private tlsContext: SecureContext | undefined;

  /** Shares found changed or gone while serving them, each entry once; the app should stop sharing them. */
  readonly shareChanged$: Observable<SharedFile> = this.changed.asObservable();

  constructor(
    @Inject(SEEDING_OPTIONS) private readonly options: ChunkServerOptions,
    @Inject(ShareRegistry) private readonly registry: ShareRegistry,
    @Inject(CapabilityVerifier) private readonly capabilities: CapabilityVerifier,
    @Optional() @Inject(PartialShares) partials?: PartialShares,
    /** The client's identity, presented to peers that ask for TLS; without it `STARTTLS` is not understood here. */
    @Optional() @Inject(ClientIdentityService) private readonly identity?: Pick<ClientIdentityService, 'get'>,
  ) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_PEER_MAX_LINE_BYTES;
    this.partials = partials ?? new PartialShares();
  }

  /** Upload rate cap over every connection, in bytes per second; 0: none. */
  get uploadLimit(): number {
    return this.pacer.rate;
  }

  /**
   * Changes the upload cap at once, for requests already waiting too (0: no
   * cap). Throws a RangeError, changing nothing, for a negative or non-finite rate.
   */
  setUploadLimit(bytesPerSecond: number): void {
    if (typeof bytesPerSecond !== 'number' || !Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
      throw new RangeError(
        `an upload limit is a number of bytes per second, 0 or more (got ${String(bytesPerSecond)})`,
      );
    }
    this.pacer.setRate(bytesPerSecond);
    this.limitSet = true;
  }

  /** Chunk bytes sent (handed to the kernel) since the server was made. */
  get uploadedBytes(): number {
    return this.uploaded;
  }

  /** Chunk bytes of the file `fileHash` of `groupId` sent since the server was made (0 for one never served). */
  uploadedBytesOf(groupId: string, fileHash: string): number {
    return this.uploadedPerShare.get(shareKeyText(groupId, fileHash)) ?? 0;
  }

  /** Open connections that have been served (a chunk or a have-list): the peers downloading from us now. */
  get servingConnections(): number {
    let n = 0;
    for (const watch of this.watches) if (watch.served) n++;
    return n;
  }

  /** Calls `listener` for each share found changed; returns the function that unsubscribes it. */
  onShareChanged(listener: (share: SharedFile) => void): () => void {
    const sub = this.changed.subscribe((share) => {
      try {
        listener(share);
      } catch (err) {
        this.logger.error(`share-changed listener failed: ${String(err)}`);
      }
    });
    return () => sub.unsubscribe();
  }

  /** Starts listening; resolves with the bound address, rejects with a ChunkServerListenError. */
  async start(): Promise<AddressInfo> {
    if (this.server) throw new Error('the chunk server is already listening');
    const { host, port } = this.options;
    this.policy = new SeederPolicy(seederLimits(this.options));
    if (!this.limitSet) this.pacer.setRate(this.options.uploadLimit ?? 0);
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      throw new ChunkServerListenError(
        `cannot listen on ${formatHostPort({ host, port })}: ${listenFailure(err)}`,
        err.code,
      );
    });
    server.on('error', (err) => this.logger.error(`listener error: ${err.message}`));
    this.server = server;
    return server.address() as AddressInfo;
  }

  /** Closes the listener, destroys every connection and waits until no file is left open. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.allSettled([...this.pumps]);
  }

  onApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** Where the server listens, once started. */
  address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  /** Connections being served now. */
  get connectionCount(): number {
    return this.policy.connectionCount;
  }

  /**
   * Answers one request: checks its capability, then reads the chunk of the
   * registered file it names through a fresh O_NOFOLLOW fd whose identity must
   * match the registry. Without a capability this seeder honours for a file it
   * shares, the answer is DENIED_REPLY and nothing is opened.
   * The open, the two fstats and the close are synchronous: each is a few
   * microseconds on an inode the kernel holds, and a round trip through the
   * libuv pool (a thread woken, the loop woken back) costs more CPU than the
   * call itself. Only the read, which may wait for the disk, goes to the pool.
   */
  async readChunk(request: GetChunkRequest, form: 'seed' | 'extended' = 'seed'): Promise<ChunkAnswer> {
    const { index, capability } = request;
    const claims = this.capabilities.check(capability);
    if (!claims) return DENIED_REPLY;
    const sharedNow = () => this.registry.findByHash(claims.groupId, claims.fileHash, claims.seederId);
    const shares = sharedNow();
    if (shares.length === 0) {
      const partial = form === 'extended' && this.partials.find(claims.groupId, claims.fileHash, claims.seederId);
      return partial ? this.readPartial(partial, request, claims) : DENIED_REPLY;
    }
    // from here on the requester holds a capability for the file: it may learn about it
    const path = shares[0].path;
    if (index >= shares[0].chunkCount) return noSuchChunk(shares[0], index);

    let fd: number;
    try {
      fd = openSync(path, OPEN_SHARED_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (GONE_CODES.has(code)) return this.fileChanged(shares, `cannot open it (${code})`);
      if (code === 'EMFILE' || code === 'ENFILE') return errReply(ErrorCode.Busy, 'too many open files; try later');
      throw err;
    }
    try {
      const st = fstatSync(fd);
      const now = st.isFile() ? identityFromStats(path, st) : undefined;
      const share = now && sameIdentity(shares[0], now) ? shares[0] : undefined;
      if (!share) return this.fileChanged([shares[0]], 'it was modified or replaced since it was shared');

      const { offset, length } = chunkRange(planChunks(share.size), index);
      const data = this.takeBuffer(length);
      let filled = 0;
      try {
        while (filled < length) {
          const bytesRead = await readAt(fd, data, filled, length - filled, offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
      } catch (err) {
        this.giveBack(data);
        throw err;
      }
      const after = fstatSync(fd);
      if (filled < length || !sameIdentity(identityFromStats(path, after), share)) {
        this.giveBack(data);
        return this.fileChanged([share], 'it was modified while being read');
      }
      if (!sharedNow().includes(share)) {
        this.giveBack(data);
        return DENIED_REPLY; // stopped while being read
      }
      return { ok: true, index, data, share: { groupId: claims.groupId, fileHash: claims.fileHash } };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Answers a `GET_CHUNK` for a download in progress: a chunk it lacks gets
   * `NOT_HELD` at once, without touching the disk; a held one is read from the
   * `.part` (no identity check: the file is being written; only that the
   * whole chunk was there). A share closed during the read is looked up
   * again: the full share may have taken over.
   */
  private async readPartial(partial: PartialShare, request: GetChunkRequest, share: ShareKey): Promise<ChunkAnswer> {
    const { index } = request;
    if (index >= partial.chunkCount) return noSuchChunk(partial, index);
    if (!partial.has(index)) return notHeld(partial, index, 'not held here yet');
    const { length } = chunkRange(planChunks(partial.size), index);
    const data = this.takeBuffer(length);
    let read;
    try {
      read = await partial.read(index, data);
    } catch (err) {
      this.giveBack(data);
      throw err;
    }
    if (read.ok) return { ok: true, index, data, share: { groupId: share.groupId, fileHash: share.fileHash } };
    this.giveBack(data);
    if (read.why === 'closed') return this.readChunk(request, 'extended');
    return notHeld(partial, index, 'could not be read whole here');
  }

  /**
   * The answer to `BITFIELD <capability>`: DENIED_REPLY unless the capability
   * names a file shared here (every bit set) or a download in progress (what
   * it holds, taken when the reply is written).
   */
  private bitfield(capability: string): BitfieldAnswer | ErrReply {
    const claims = this.capabilities.check(capability);
    if (!claims) return DENIED_REPLY;
    const shares = this.registry.findByHash(claims.groupId, claims.fileHash, claims.seederId);
    if (shares.length > 0) return { ok: true, kind: 'bitfield', capability, chunkCount: shares[0].chunkCount };
    const partial = this.partials.find(claims.groupId, claims.fileHash, claims.seederId);
    if (!partial) return DENIED_REPLY;
    return { ok: true, kind: 'bitfield', capability, chunkCount: partial.chunkCount, partial };
  }

  /**
   * Writes a `BITFIELD` reply and starts the `HAVE` lines that follow it, in
   * one synchronous step: no chunk gained in between is missed or told early.
   * A download that ended since the request was read is looked up again.
   */
  private writeBitfield(socket: Socket, feed: HaveFeed, answer: BitfieldAnswer): boolean {
    const now = answer.partial?.closed ? this.bitfield(answer.capability) : answer;
    if (!now.ok) {
      feed.watch(undefined);
      return socket.write(formatReply(now));
    }
    const bits = now.partial ? now.partial.bits() : new Uint8Array(now.chunkCount).fill(1);
    feed.watch(now.partial);
    return socket.write(`${formatBitfieldReply(bits)}\n`);
  }

  /** A buffer of `length` bytes for one chunk, reused when possible. */
  private takeBuffer(length: number): Buffer {
    if (length > CHUNK_SIZE) return Buffer.allocUnsafeSlow(length);
    // every pooled buffer is one chunk long, backed by its own memory (not Node's shared pool)
    const buf = this.freeBuffers.pop() ?? Buffer.allocUnsafeSlow(CHUNK_SIZE);
    return length === CHUNK_SIZE ? buf : buf.subarray(0, length);
  }

  /** Takes back a buffer from `takeBuffer` that nothing uses any more. */
  private giveBack(buf: Buffer): void {
    if (this.freeBuffers.length >= MAX_FREE_BUFFERS || buf.byteOffset !== 0 || buf.buffer.byteLength !== CHUNK_SIZE) {
      return;
    }
    this.freeBuffers.push(buf.length === CHUNK_SIZE ? buf : Buffer.from(buf.buffer, 0, CHUNK_SIZE));
  }

  private fileChanged(shares: readonly SharedFile[], why: string): ErrReply {
    this.report(shares);
    return errReply(ErrorCode.FileChanged, `${shares[0].fileName} is no longer shared as it was: ${why}`);
  }

  private report(shares: readonly SharedFile[]): void {
    for (const share of shares) {
      if (this.reported.has(share)) continue;
      this.reported.add(share);
      this.changed.next(share);
    }
  }

  /** Tracks a socket (TCP, or TLS over it) until it closes: `stop` destroys it, the pacer forgets it. */
  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', (err) => this.logger.debug(`peer connection error: ${err.message}`));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.pacer.cancel(socket);
    });
  }

  private accept(socket: Socket): void {
    this.track(socket);
    const state: ConnectionForm = {
      form: 'unknown',
      head: Buffer.alloc(0),
      closing: false,
      socket,
      handshaking: false,
    };
    const admission = this.policy.admit(socket.remoteAddress, {
      // bytes the kernel took: they grow as the peer reads (counted on the TLS socket once there is one)
      sentBytes: () => state.socket.bytesWritten - state.socket.writableLength,
      expire: (reply) => expire(state, reply),
    });
    if (!admission.ok) return refuseOnFirstLine(socket, admission.reply);
    const { watch } = admission;
    this.watches.add(watch);
    socket.once('close', () => {
      watch.release();
      this.watches.delete(watch);
    });
    socket.setNoDelay(true);
    if (!this.identity) return this.serve(socket, watch, state);
    // a downloader of ours opens with the TLS handshake itself; STARTTLS is served too
    void sniffStartTls(socket, { directTls: true }).then(
      (first) => {
        if (state.closing || socket.destroyed) return; // turned away meanwhile: that path has the socket
        if (first.kind === 'injected') return void socket.destroy(); // bytes in clear after STARTTLS: not one more
        if (first.kind === 'starttls') return this.upgrade(socket, watch, state);
        if (first.kind === 'tls') return this.upgrade(socket, watch, state, first.head);
        this.serve(socket, watch, state, first.head, first.ended);
      },
      (err: unknown) => {
        this.logger.error(`reading a connection's first bytes failed: ${String(err)}`);
        socket.destroy();
      },
    );
  }

  /**
   * Answers `STARTTLS` (or, given `head`, takes the handshake the peer opened with) and runs the handshake,
   * presenting the client's identity and asking for no certificate; then serves the connection inside TLS as a new
   * one (its first line decides its form). A handshake that fails or does not end in time closes the connection (the
   * request timeout closes it too, as for a peer that sends nothing).
   */
  private upgrade(socket: Socket, watch: ConnectionWatch, state: ConnectionForm, head?: Buffer): void {
    let context: SecureContext;
    try {
      context = this.tlsContext ??= serverContext(this.identity!.get());
    } catch (err) {
      this.logger.error(`cannot serve TLS: ${err instanceof Error ? err.message : String(err)}`);
      return void socket.destroy();
    }
    state.handshaking = true;
    const timeoutMs = seederLimits(this.options).requestTimeoutMs || DEFAULT_SEEDER_LIMITS.requestTimeoutMs;
    acceptTls(socket, { context, timeoutMs, head }).then(
      (tls: TLSSocket) => {
        state.handshaking = false;
        if (state.closing || socket.destroyed) return void tls.destroy();
        this.track(tls);
        tls.once('close', () => socket.destroy());
        state.socket = tls;
        this.serve(tls, watch, state);
      },
      (err: unknown) => {
        state.handshaking = false;
        this.logger.debug(`TLS with a peer failed: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
  }

  /**
   * Reads and answers the requests of a connection (`head`: its first bytes, already read; `ended`: the peer ended
   * its side meanwhile).
   */
  private serve(socket: Socket, watch: ConnectionWatch, state: ConnectionForm, head?: Buffer, ended0 = false): void {
    const decoder = new FrameDecoder(this.maxLineBytes);
    const feed = new HaveFeed(socket, state, this.options.haveCoalesceMs ?? DEFAULT_HAVE_COALESCE_MS);
    socket.once('close', () => feed.stop());
    let pumping = false;
    /** Bytes or the end came while the loop ran. */
    let again = false;
    let ended = false;

    const loop = async (): Promise<void> => {
      // the next chunk is read from disk while the previous one is still going out: at most two per connection
      let sending: Promise<void> | undefined;
      for (let frame = decoder.next(); frame && !socket.destroyed && !state.closing; frame = decoder.next()) {
        if (state.form === 'seed') return; // its one request is answered
        if (state.form === 'unknown') {
          if (frame.type === 'line' && frame.line === HELLO_LINE) {
            state.form = 'extended';
            if (!socket.write(`${HELLO_REPLY}\n`)) sending = drained(socket);
            continue;
          }
          // any other first line is the one request of a seed-form connection
          state.form = 'seed';
          return this.serveSeed(socket, watch, state, frame);
        }
        // the one place a request counts as served: answered with a chunk or a have-list (an ERR answer does not count)
        const answer = await watch.during(this.answer(frame, 'extended'), (a) => a?.ok === true);
        if (answer === undefined) continue;
        if (sending) await sending;
        sending = undefined;
        if (socket.destroyed || !socket.writable || state.closing) {
          if (answer.ok && !isBitfield(answer)) this.giveBack(answer.data);
          return;
        }
        let flushed: boolean;
        if (isBitfield(answer)) {
          flushed = this.writeBitfield(socket, feed, answer);
        } else if (answer.ok) {
          const paced = await watch.during(this.pace(answer.data.length, socket));
          if (!paced || socket.destroyed || !socket.writable || state.closing) {
            this.giveBack(answer.data);
            return;
          }
          // header and bytes in one synchronous step: a HAVE line (written from a timer) cannot fall between them
          socket.cork();
          socket.write(`${formatChunkHeader(answer.index, answer.data.length)}\n`);
          flushed = this.writeChunk(socket, answer.data, answer.share);
          socket.uncork();
        } else {
          flushed = socket.write(formatReply(answer));
        }
        if (!flushed) sending = drained(socket);
      }
      await sending;
    };

    const pump = (): void => {
      if (pumping) {
        // the loop may be past its last look at the decoder (waiting for the last reply to drain): look again after
        again = true;
        return;
      }
      pumping = true;
      again = false;
      const run = (async () => {
        try {
          await loop();
        } catch (err) {
          this.logger.error(
            `chunk connection failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
          );
          socket.destroy();
        } finally {
          pumping = false;
          if (again && !socket.destroyed && !state.closing && state.form !== 'seed') {
            // requests that came while it finished: not left waiting for bytes that will not come
            pump();
          } else if (!socket.destroyed) {
            if (ended)
              socket.end(); // the peer half-closed: all it asked has been answered
            else if (socket.isPaused()) socket.resume();
          }
        }
      })();
      this.pumps.add(run);
      void run.finally(() => this.pumps.delete(run));
    };

    const onData = (chunk: Buffer) => {
      watch.received(chunk);
      if (state.form === 'unknown') keepHead(state, chunk);
      decoder.push(chunk);
      if (decoder.bufferedBytes >= PAUSE_BYTES) socket.pause();
      pump();
    };
    const onEnd = () => {
      ended = true;
      pump();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    if (head && head.length > 0) onData(head);
    if (ended0) onEnd();
    else if (head && !socket.destroyed && decoder.bufferedBytes < PAUSE_BYTES) socket.resume(); // sniffStartTls left it paused
  }

  /**
   * Answers the one request of a seed-form connection: the chunk's raw bytes,
   * nothing before or after, then the end of the connection; any refusal or
   * error closes it without a byte.
   */
  private async serveSeed(socket: Socket, watch: ConnectionWatch, state: ConnectionForm, frame: Frame): Promise<void> {
    // nothing after the request is read as a request: the connection ends with its answer
    socket.removeAllListeners('data');
    socket.on('data', () => undefined);
    socket.resume();
    const answer = await watch.during(this.answer(frame, 'seed'), (a) => a?.ok === true);
    if (!answer?.ok || isBitfield(answer) || state.closing) {
      if (answer?.ok && !isBitfield(answer)) this.giveBack(answer.data);
      if (!state.closing) refuse(socket);
      return;
    }
    const { data } = answer;
    const paced = await watch.during(this.pace(data.length, socket));
    if (!paced || socket.destroyed || !socket.writable || state.closing) {
      this.giveBack(data);
      return;
    }
    this.writeChunk(socket, data, answer.share);
    socket.end(() => {
      // all of it is with the kernel: a peer that does not close its side is let go of a while later
      const timer = setTimeout(() => socket.destroy(), SEED_LINGER_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    });
  }

  /**
   * Waits until `bytes` more may be sent under the upload cap, in turn with
   * the other connections waiting (one grant per connection per round,
   * whatever its pipeline depth); false when the connection closed first.
   */
  private async pace(bytes: number, socket: Socket): Promise<boolean> {
    // a socket already gone would never be cancelled (its 'close' came first) and would use up a turn
    if (socket.destroyed) return false;
    try {
      await this.pacer.take(bytes, socket);
      return true;
    } catch {
      return false;
    }
  }

  /** Writes a chunk's bytes; its buffer is reused once the socket is done with it (sent, or failed). */
  private writeChunk(socket: Socket, data: Buffer, share: ShareKey | undefined): boolean {
    const length = data.length;
    return socket.write(data, (err) => {
      if (!err) {
        this.uploaded += length;
        if (share) {
          const key = shareKeyText(share.groupId, share.fileHash);
          this.uploadedPerShare.set(key, (this.uploadedPerShare.get(key) ?? 0) + length);
        }
      }
      this.giveBack(data);
    });
  }

  /** The answer to one frame; undefined for a blank line, which is no request. */
  private async answer(frame: Frame, form: 'seed' | 'extended'): Promise<Answer | undefined> {
    if (frame.type !== 'line') {
      return errReply(ErrorCode.LineTooLong, `request line longer than ${this.maxLineBytes} bytes ignored`);
    }
    if (frame.line.trim() === '') return undefined;
    if (frame.line.startsWith(HELLO_WORD) || frame.line === HELLO) {
      return errReply(ErrorCode.BadSyntax, 'HELLO is only the first line');
    }
    if (form === 'extended' && frame.line.trim() === STARTTLS) {
      return errReply(ErrorCode.BadSyntax, 'STARTTLS is only the first line');
    }
    let request: PeerRequest;
    try {
      // the seed form knows GET_CHUNK only
      request = form === 'seed' ? { kind: 'get_chunk', ...parseGetChunk(frame.line) } : parsePeerRequest(frame.line);
    } catch (err) {
      if (err instanceof ProtocolError) return errReply(err.code, err.message.slice(0, MAX_QUOTED));
      throw err;
    }
    if (request.kind === 'bitfield') return this.bitfield(request.capability);
    try {
      return await this.readChunk(request, form);
    } catch (err) {
      this.logger.error(`reading chunk ${request.index} failed: ${String(err)}`);
      return errReply(ErrorCode.Internal, 'could not read the chunk');
    }
  }
}

/**
 * A deadline passed or the connection was evicted: `reply` goes out only on
 * an extended connection. One whose form is not known yet, evicted to make
 * room, is refused as at admission (by its first line); an expired one, or a
 * seed-form one, is closed without a byte.
 */
function expire(state: ConnectionForm, reply: ErrReply): void {
  const { form, socket } = state;
  state.closing = true;
  if (state.handshaking) return void socket.destroy(); // no line can go out in the middle of a TLS handshake
  if (form === 'extended') return refuse(socket, reply);
  if (form === 'unknown' && reply.code !== ErrorCode.IdleTimeout) return refuseOnFirstLine(socket, reply, state.head);
  refuse(socket);
}

function notHeld(share: PartialShare, index: number, why: string): ErrReply {
  return errReply(ErrorCode.NotHeld, `chunk ${index} of ${share.fileName} ${why}`);
}

function noSuchChunk(share: Pick<SharedFile, 'chunkCount' | 'fileName'>, index: number): ErrReply {
  const range = share.chunkCount === 0 ? 'it has no chunks' : `chunks are 0..${share.chunkCount - 1}`;
  return errReply(ErrorCode.NoSuchChunk, `no chunk ${index} in ${share.fileName}: ${range}`);
}
