import { FrameDecoder, HostPort, Reply, ReplyAssembler } from '@app/protocol';
import { connect, Socket } from 'node:net';

const MAX_REPLY_LINE = 64 * 1024 * 1024;

/** Seals request lines and opens replies once a link is authenticated; throws on a reply that fails the check. */
export interface LineSealer {
  sealRequest(line: string): string;
  openReply(reply: Reply): Reply;
}

/** A request/reply connection to another tracker: lines out, replies back in order, several in flight. */
export class LineClient {
  private readonly pending: { resolve(r: Reply): void; reject(e: Error): void }[] = [];
  private closedError: Error | undefined;
  private readonly closeListeners: (() => void)[] = [];
  private sealer: LineSealer | undefined;

  private constructor(private readonly socket: Socket) {
    const decoder = new FrameDecoder(MAX_REPLY_LINE);
    const assembler = new ReplyAssembler();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
        for (let f = decoder.next(); f; f = decoder.next()) {
          if (f.type !== 'line') throw new Error('reply line too long');
          const reply = assembler.push(f.line);
          if (!reply) continue;
          const opened = this.sealer ? this.sealer.openReply(reply) : reply;
          const waiter = this.pending.shift();
          if (!waiter) throw new Error('a reply nobody asked for');
          waiter.resolve(opened);
        }
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(address: HostPort, timeoutMs: number): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: address.host, port: address.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('connect timed out'));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new LineClient(socket));
      });
    });
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  /** The error the connection ended with, once it has. */
  get error(): Error | undefined {
    return this.closedError;
  }

  /** From now on every request is sealed and every reply opened (the next reply is the first one checked). */
  secure(sealer: LineSealer): void {
    this.sealer = sealer;
  }

  request(text: string): Promise<Reply> {
    if (this.closedError) return Promise.reject(this.closedError);
    const line = text.endsWith('\n') ? text.slice(0, -1) : text;
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(`${this.sealer ? this.sealer.sealRequest(line) : line}\n`);
    });
  }

  close(reason: Error = new Error('connection closed')): void {
    this.fail(reason);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    this.socket.destroy();
    for (const p of this.pending.splice(0)) p.reject(err);
    for (const l of this.closeListeners.splice(0)) l();
  }
}
