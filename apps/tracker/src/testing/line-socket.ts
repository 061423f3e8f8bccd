import { HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { Identity, startTlsClient } from '@app/tls';
import { connect, Socket } from 'node:net';

/**
 * A raw TCP client for the tracker's line protocol: write bytes, then read
 * exactly N reply lines (or fail after a timeout). No sleeps, no parsing.
 */
export class LineSocket {
  private buffer = '';
  private closed = false;
  private waiter: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  /**
   * Connects; by default sends `HELLO p2p-share/2` and reads its `OK 0
   * p2p-share/2`, so that the connection speaks the extended form (framed
   * replies). `{ hello: false }`: a seed-form connection, nothing sent yet.
   */
  static async open(port: number, host = '127.0.0.1', options: { hello?: boolean } = {}): Promise<LineSocket> {
    const conn = await new Promise<LineSocket>((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new LineSocket(socket));
      });
    });
    if (options.hello === false) return conn;
    const [reply] = await conn.request(HELLO_LINE);
    if (reply !== HELLO_REPLY) {
      conn.destroy();
      throw new Error(`HELLO answered with ${JSON.stringify(reply)}`);
    }
    return conn;
  }

  /**
   * Connects and upgrades to TLS with `STARTTLS` (presenting `identity` when
   * given), then, unless `{ hello: false }`, sends the HELLO inside TLS.
   * `verify` sees the tracker's fingerprint (default: anything is taken).
   */
  static async openTls(
    port: number,
    options: { identity?: Identity; hello?: boolean; verify?: (fingerprint: string) => void } = {},
  ): Promise<LineSocket> {
    const raw = await new Promise<Socket>((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
    });
    const tls = await startTlsClient(raw, {
      peer: `127.0.0.1:${port}`,
      timeoutMs: 5000,
      identity: options.identity,
      verify: options.verify ?? (() => undefined),
    });
    const conn = new LineSocket(tls);
    if (options.hello === false) return conn;
    const [reply] = await conn.request(HELLO_LINE);
    if (reply !== HELLO_REPLY) {
      conn.destroy();
      throw new Error(`HELLO answered with ${JSON.stringify(reply)}`);
    }
    return conn;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Reads exactly `n` lines (without their newline); rejects on timeout or when the peer closes first. */
  async readLines(n: number, timeoutMs = 2000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.buffer.split('\n');
      if (lines.length - 1 >= n) {
        const taken = lines.slice(0, n);
        this.buffer = lines.slice(n).join('\n');
        return taken;
      }
      if (this.closed)
        throw new Error(
          `connection closed after ${lines.length - 1} of ${n} lines; got ${JSON.stringify(this.buffer)}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} lines; got ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiter = done;
      });
      this.waiter = undefined;
    }
  }

  /** Sends one request line and reads `replyLines` lines back. */
  async request(line: string, replyLines = 1, timeoutMs?: number): Promise<string[]> {
    this.write(line + '\n');
    return this.readLines(replyLines, timeoutMs);
  }

  /** Resolves once the peer has closed the connection (rejects after the timeout). */
  waitClosed(timeoutMs = 2000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Text received but not yet read as lines. */
  get pending(): string {
    return this.buffer;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
