import {
  ErrReply,
  FrameDecoder,
  HELLO_LINE,
  HELLO_REPLY,
  HostPort,
  parseReplyHeader,
  Reply,
  ReplyAssembler,
} from '@app/protocol';
import { Identity, startTlsClient, StartTlsRefusedError } from '@app/tls';
import { connect, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** A reply line may carry every chunk hash of a large file. */
export const MAX_REPLY_LINE_BYTES = 64 * 1024 * 1024;

/** A reply, with the bytes its lines took on the wire (counted as characters: replies are ASCII but for names). */
export type SizedReply = Reply & { readonly bytes: number };

/** Seals request lines and opens replies once a link is authenticated (tracker links); throws on a bad reply. */
export interface LineSealer {
  sealRequest(line: string): string;
  openReply(reply: Reply): Reply;
}

export interface LineConnectionOptions {
  /** Give up connecting after this long. */
  readonly timeoutMs: number;
  /** Gives up connecting, or closes the connection, when aborted. */
  readonly signal?: AbortSignal;
  readonly maxReplyLineBytes?: number;
  /** TCP keep-alive probe delay (0: off). */
  readonly keepAliveMs?: number;
  /**
   * Send `HELLO p2p-share/2` first and resolve only once `OK 0 p2p-share/2`
   * came back: the connection then speaks the extended form (framed replies,
   * request ids, continuation lines). Within `timeoutMs` too.
   */
  readonly hello?: boolean;
  /**
   * Upgrade to TLS first (`STARTTLS`, docs/PROTOCOL.md 8), within `timeoutMs`
   * too: nothing else is sent, the HELLO included, until the server's
   * certificate passed `verify`.
   */
  readonly tls?: LineTlsOptions;
  /** Called once the TCP connection is up, before STARTTLS and the HELLO (a deadline for what follows starts here). */
  readonly onConnect?: () => void;
}

export interface LineTlsOptions {
  /** Presented when the server asks for a certificate (trackers learn a client's or a tracker's fingerprint). */
  readonly identity?: Identity;
  /** Throws (a FingerprintMismatchError) to refuse the server's certificate: the connection then fails with it. */
  readonly verify: (fingerprint: string) => void;
}

/**
 * How a connection ended: the other side went away or the network failed
 * (`gone`), it sent something that is not the reply expected (`bad`), or this
 * side closed it (`closed`).
 */
export type LineConnectionEnd = 'gone' | 'bad' | 'closed';

export class LineConnectError extends Error {
  override readonly name = 'LineConnectError';

  /** `refusal`: the peer's `ERR` answer to the HELLO (e.g. `TOO_MANY_CONNECTIONS`), when that is why. */
  constructor(
    message: string,
    readonly refusal?: ErrReply,
  ) {
    super(message);
  }
}

/**
 * Why STARTTLS failed, as a LineConnectError: a refusal when the server
 * answered it with an `ERR` line (a limit), the error itself (a
 * FingerprintMismatchError, kept as the cause) otherwise.
 */
function tlsFailure(err: Error): LineConnectError {
  let refusal: ErrReply | undefined;
  if (err instanceof StartTlsRefusedError && err.answer.startsWith('ERR ')) {
    try {
      const header = parseReplyHeader(err.answer);
      if (!header.ok) refusal = header;
    } catch {
      // not a framed line after all
    }
  }
  const wrapped = new LineConnectError(refusal ? `refused: ${refusal.code} ${refusal.message}` : err.message, refusal);
  wrapped.cause = err;
  return wrapped;
}

/** How the peer answered the HELLO. */
interface Greeting {
  resolve(): void;
  reject(err: LineConnectError): void;
}

interface Waiter {
  resolve(reply: SizedReply): void;
  reject(err: Error): void;
}

/**
 * One request/reply connection of the line protocol: a request is a line (plus
 * the continuation lines it announces), a reply is `OK <n> <message>` and n
 * lines or `ERR <CODE> <message>`, replies come in request order, and several
 * requests may be in flight. Every line client of the codebase (client to
 * tracker, tracker to tracker, the bench) talks through this class.
 */
export class LineConnection {
  private readonly waiting: Waiter[] = [];
  private ended: { kind: LineConnectionEnd; error: Error } | undefined;
  private readonly closeListeners: ((kind: LineConnectionEnd, error: Error) => void)[] = [];
  private readonly dataListeners: (() => void)[] = [];
  /** Takes a reply that no request waits for (a server's notice before it hangs up); true when it was taken. */
  private noticeListener: ((reply: Reply) => boolean) | undefined;
  private sealer: LineSealer | undefined;
  private replyBytes = 0;
  /** Set while the answer to the HELLO is awaited: the first line is read as that answer. */
  private greeting: Greeting | undefined;

  private constructor(
    private readonly socket: Socket,
    options: LineConnectionOptions,
  ) {
    const decoder = new FrameDecoder(options.maxReplyLineBytes ?? MAX_REPLY_LINE_BYTES);
    const assembler = new ReplyAssembler();
    socket.setNoDelay(true);
    if (options.keepAliveMs) socket.setKeepAlive(true, options.keepAliveMs);
    socket.on('data', (chunk: Buffer) => {
      for (const listener of this.dataListeners) listener();
      try {
        decoder.push(chunk);
        for (let f = decoder.next(); f && !this.ended; f = decoder.next()) {
          if (f.type !== 'line') throw new Error(`reply line longer than ${decoder.maxLineBytes} bytes`);
          if (this.greeting) {
            this.greeted(f.line);
            continue;
          }
          this.replyBytes += f.line.length + 1;
          const reply = assembler.push(f.line);
          if (!reply) continue;
          const opened = this.sealer ? this.sealer.openReply(reply) : reply;
          if (this.waiting.length === 0 && this.noticeListener?.(opened)) continue;
          const waiter = this.waiting.shift();
          if (!waiter) throw new Error('a reply without a request');
          const bytes = this.replyBytes;
          this.replyBytes = 0;
          waiter.resolve({ ...opened, bytes });
        }
      } catch (err) {
        this.fail('bad', err instanceof Error ? err : new Error(String(err)));
      }
    });
    socket.on('error', (err) => this.fail('gone', err));
    socket.on('end', () => this.fail('gone', new Error('connection closed')));
    socket.on('close', () => this.fail('gone', new Error('connection closed')));
    options.signal?.addEventListener('abort', () => this.close(), { once: true });
  }

  /** Connects to `address`; rejects with a LineConnectError after `timeoutMs` or when `signal` aborts. */
  static open(address: HostPort, options: LineConnectionOptions): Promise<LineConnection> {
    return new Promise((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(new LineConnectError('closed'));
        return;
      }
      const socket = connect({ host: address.host, port: address.port });
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: Error) => {
        cleanup();
        socket.destroy();
        reject(err instanceof LineConnectError ? err : new LineConnectError(err.message));
      };
      const onAbort = () => fail(new LineConnectError('closed'));
      const timer = setTimeout(() => fail(new LineConnectError('connect timed out')), options.timeoutMs);
      signal?.addEventListener('abort', onAbort);
      socket.once('error', fail);
      socket.once('connect', () => {
        options.onConnect?.();
        if (!options.tls) return opened(socket);
        socket.removeListener('error', fail);
        const peer = `${address.host}:${address.port}`;
        startTlsClient(socket, { peer, timeoutMs: options.timeoutMs, signal, ...options.tls }).then(
          (secure) => {
            if (signal?.aborted) {
              secure.destroy();
              return fail(new LineConnectError('closed'));
            }
            secure.once('error', fail);
            opened(secure);
          },
          (err: Error) => fail(tlsFailure(err)),
        );
      });
      const opened = (socket: Socket) => {
        if (!options.hello) {
          cleanup();
          socket.removeListener('error', fail);
          resolve(new LineConnection(socket, options));
          return;
        }
        socket.removeListener('error', fail);
        const conn = new LineConnection(socket, options);
        const failHello = (err: Error) => {
          cleanup();
          conn.close(err);
          reject(err instanceof LineConnectError ? err : new LineConnectError(err.message));
        };
        conn.greeting = {
          resolve: () => {
            cleanup();
            resolve(conn);
          },
          reject: failHello,
        };
        conn.onClose((_kind, error) => {
          if (conn.greeting) failHello(new LineConnectError(`no answer to HELLO: ${error.message}`));
        });
        socket.write(`${HELLO_LINE}\n`);
      };
    });
  }

  /** The TLS socket under this connection, when it was opened with `tls` (for keying material). */
  get tls(): TLSSocket | undefined {
    return this.socket instanceof TLSSocket ? this.socket : undefined;
  }

  /** The first line after the HELLO: `OK 0 p2p-share/2` opens the connection, anything else rejects it. */
  private greeted(line: string): void {
    const greeting = this.greeting!;
    this.greeting = undefined;
    if (line === HELLO_REPLY) {
      greeting.resolve();
      return;
    }
    let refusal: ErrReply | undefined;
    try {
      const header = parseReplyHeader(line);
      if (!header.ok) refusal = header;
    } catch {
      // not framed at all: a peer that speaks only the seed form (`error: ...`) or something else
    }
    const shown = line.length > 200 ? `${line.slice(0, 200)}...` : line;
    greeting.reject(
      new LineConnectError(
        refusal ? `refused: ${refusal.code} ${refusal.message}` : `HELLO answered with '${shown}'`,
        refusal,
      ),
    );
  }

  get closed(): boolean {
    return this.ended !== undefined;
  }

  /** Why the connection ended, once it has. */
  get error(): Error | undefined {
    return this.ended?.error;
  }

  get endKind(): LineConnectionEnd | undefined {
    return this.ended?.kind;
  }

  /** Bytes of requests still queued in the socket: a large request still going out. */
  get writableLength(): number {
    return this.socket.writableLength;
  }

  /** Runs `listener` once the connection has ended (at once if it has). */
  onClose(listener: (kind: LineConnectionEnd, error: Error) => void): void {
    if (this.ended) listener(this.ended.kind, this.ended.error);
    else this.closeListeners.push(listener);
  }

  /** Runs `listener` whenever bytes arrive, before they are read (to re-arm a reply timer). */
  onData(listener: () => void): void {
    this.dataListeners.push(listener);
  }

  /** Offers `listener` every reply that arrives while no request waits; one it does not take ends the connection. */
  onNotice(listener: (reply: Reply) => boolean): void {
    this.noticeListener = listener;
  }

  /** From now on every request line is sealed and every reply opened (the next reply is the first one checked). */
  secure(sealer: LineSealer): void {
    this.sealer = sealer;
  }

  /**
   * Sends one request line (without its newline) and the continuation lines it
   * announces; resolves with its reply (`ERR` replies too), rejects when the
   * connection ends first.
   */
  request(line: string, continuation: readonly string[] = []): Promise<SizedReply> {
    if (this.ended) return Promise.reject(this.ended.error);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      const first = `${this.sealer ? this.sealer.sealRequest(line) : line}\n`;
      if (continuation.length === 0) this.socket.write(first);
      else if (this.sealer)
        this.socket.write(first + continuation.map((l) => this.sealer!.sealRequest(l)).join('\n') + '\n');
      else this.socket.write(`${first}${continuation.join('\n')}\n`);
    });
  }

  /** Ends the connection; requests in flight fail with `reason`. */
  close(reason: Error = new Error('connection closed')): void {
    this.fail('closed', reason);
  }

  private fail(kind: LineConnectionEnd, error: Error): void {
    if (this.ended) return;
    this.ended = { kind, error };
    this.socket.destroy();
    for (const w of this.waiting.splice(0)) w.reject(error);
    for (const l of this.closeListeners.splice(0)) l(kind, error);
  }
}
