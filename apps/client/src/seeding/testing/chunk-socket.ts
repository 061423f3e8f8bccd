import { FrameDecoder, HELLO_LINE, HELLO_REPLY, parseChunkHeader, parseReplyHeader } from '@app/protocol';
import { connectTls, seederVerifier, startTlsClient } from '@app/tls';
import { connect, Socket } from 'node:net';

/** One answer of a seeder, as a downloader reads it. */
export type PeerAnswer =
  | { readonly kind: 'chunk'; readonly index: number; readonly data: Buffer }
  | { readonly kind: 'err'; readonly code: string; readonly message: string }
  | { readonly kind: 'bitfield'; readonly line: string };

/** Answers received over every ChunkSocket, counted in arrival order. */
let arrivalCount = 0;

/**
 * How the socket speaks: `extended` sends `HELLO p2p-share/2` first and takes
 * its `OK 0 p2p-share/2` silently (an `ERR` in its place is read as an
 * answer); `seed` sends nothing first and only collects the raw bytes
 * received (`raw`), parsing nothing.
 */
export type ChunkSocketForm = 'extended' | 'seed';

/**
 * A raw TCP client of the chunk server: write request lines, read answers
 * (`CHUNK` header + body, or `ERR` line) in order. No sleeps: every wait is
 * for bytes, a close, or a timeout that fails the test.
 */
export class ChunkSocket {
  private readonly received: Buffer[] = [];
  private greeted = false;
  private readonly decoder = new FrameDecoder(1024 * 1024);
  private readonly answers: PeerAnswer[] = [];
  private header: { index: number; length: number } | undefined;
  private closed = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  /** Raw bytes received so far. */
  bytesReceived = 0;
  /** The indexes of each `HAVE` line received, in order. */
  readonly haves: number[][] = [];
  /** Every answer and `HAVE` line in the order received: `CHUNK <i>`, `ERR <code>`, the BITFIELD or HAVE line. */
  readonly events: string[] = [];
  /** For each answer received, its place among the answers of every ChunkSocket (comparable across sockets). */
  readonly arrivals: number[] = [];

  private constructor(
    readonly socket: Socket,
    readonly form: ChunkSocketForm,
  ) {
    if (form === 'extended') socket.write(`${HELLO_LINE}\n`);
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      if (form === 'seed') {
        this.received.push(chunk);
        this.waiter?.();
        return;
      }
      this.decoder.push(chunk);
      try {
        this.parse();
      } catch (err) {
        this.failure = err as Error;
      }
      this.waiter?.();
    });
    // The socket half-closes on our side only when a test says so; the server's FIN is what counts.
    const closed = () => {
      this.closed = true;
      this.waiter?.();
    };
    socket.on('end', closed);
    socket.on('close', closed);
    socket.on('error', () => undefined);
  }

  /** `localAddress`: the address to connect from (another 127.x.y.z plays another machine). */
  static open(
    port: number,
    host = '127.0.0.1',
    localAddress?: string,
    form: ChunkSocketForm = 'extended',
  ): Promise<ChunkSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, localAddress, allowHalfOpen: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new ChunkSocket(socket, form));
      });
    });
  }

  /** A raw TCP connection to the chunk server, nothing sent yet. */
  static dial(port: number, host = '127.0.0.1'): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, allowHalfOpen: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
    });
  }

  /**
   * A connection upgraded with `STARTTLS` (the seeder's certificate must be `fingerprint`), then spoken to inside
   * TLS in `form` as `open` does in clear.
   */
  static async openTls(port: number, fingerprint: string, form: ChunkSocketForm = 'extended'): Promise<ChunkSocket> {
    const raw = await ChunkSocket.dial(port);
    const tls = await startTlsClient(raw, {
      peer: 'the test seeder',
      timeoutMs: 5000,
      verify: seederVerifier('the test seeder', fingerprint),
    });
    return new ChunkSocket(tls, form);
  }

  /** A connection that opens with the TLS handshake itself (no `STARTTLS` line), then as `openTls`. */
  static async openDirectTls(
    port: number,
    fingerprint: string,
    form: ChunkSocketForm = 'extended',
  ): Promise<ChunkSocket> {
    const tls = await connectTls({
      host: '127.0.0.1',
      port,
      peer: 'the test seeder',
      timeoutMs: 5000,
      verify: seederVerifier('the test seeder', fingerprint),
    });
    return new ChunkSocket(tls, form);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends `GET_CHUNK <index> <path>` lines (paths quoted as needed by the caller). */
  send(...lines: string[]): void {
    this.write(lines.map((l) => `${l}\n`).join(''));
  }

  /** Reads exactly `n` answers; rejects on timeout, on garbage, or when the server closes first. */
  async read(n: number, timeoutMs = 5000): Promise<PeerAnswer[]> {
    await this.until(() => this.answers.length >= n, `${n} answers`, timeoutMs);
    return this.answers.splice(0, n);
  }

  async readOne(timeoutMs?: number): Promise<PeerAnswer> {
    return (await this.read(1, timeoutMs))[0];
  }

  /** Every byte received so far (seed form only). */
  get raw(): Buffer {
    return Buffer.concat(this.received);
  }

  /** Seed form: resolves with every byte received once the server has closed the connection. */
  async readAllUntilClosed(timeoutMs = 5000): Promise<Buffer> {
    await this.waitClosed(timeoutMs);
    return this.raw;
  }

  /** Resolves once the server has closed (or half-closed) the connection. */
  waitClosed(timeoutMs = 5000): Promise<void> {
    return this.until(() => this.closed, 'the server closes the connection', timeoutMs, true);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private parse(): void {
    for (let frame = this.decoder.next(); frame; frame = this.decoder.next()) {
      if (frame.type === 'overflow') throw new Error('server sent an over-long line');
      if (frame.type === 'data') {
        this.answer({ kind: 'chunk', index: this.header!.index, data: frame.data });
        this.header = undefined;
        continue;
      }
      if (!this.greeted) {
        this.greeted = true;
        if (frame.line === HELLO_REPLY) continue;
      }
      if (frame.line.startsWith('CHUNK ')) {
        const header = parseChunkHeader(frame.line);
        if (header.length === 0) this.answer({ kind: 'chunk', index: header.index, data: Buffer.alloc(0) });
        else {
          this.header = header;
          this.decoder.expectData(header.length);
        }
        continue;
      }
      if (frame.line.startsWith('HAVE ')) {
        const indexes = frame.line.slice(5).split(',').map(Number);
        if (indexes.some((i) => !Number.isInteger(i))) throw new Error(`bad HAVE line: ${frame.line}`);
        this.haves.push(indexes);
        this.events.push(frame.line);
        continue;
      }
      if (frame.line.startsWith('BITFIELD ')) {
        this.answer({ kind: 'bitfield', line: frame.line });
        continue;
      }
      const reply = parseReplyHeader(frame.line);
      if (reply.ok) throw new Error(`unexpected line from the seeder: ${frame.line}`);
      this.answer({ kind: 'err', code: reply.code, message: reply.message });
    }
  }

  private answer(answer: PeerAnswer): void {
    this.answers.push(answer);
    this.arrivals.push(++arrivalCount);
    this.events.push(
      answer.kind === 'chunk' ? `CHUNK ${answer.index}` : answer.kind === 'err' ? `ERR ${answer.code}` : answer.line,
    );
  }

  /** Every index of the `HAVE` lines received so far. */
  get haveIndexes(): number[] {
    return this.haves.flat();
  }

  /** Waits until `check` holds on what has arrived; rejects on timeout, garbage, or a close. */
  async waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    await this.until(check, what, timeoutMs);
  }

  private async until(done: () => boolean, what: string, timeoutMs: number, closeOk = false): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.failure) throw this.failure;
      if (done()) return;
      if (this.closed && !closeOk) throw new Error(`connection closed before ${what}; have ${this.answers.length}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; have ${this.answers.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, left);
        function finish() {
          clearTimeout(timer);
          resolve();
        }
        this.waiter = finish;
      });
      this.waiter = undefined;
    }
  }
}
