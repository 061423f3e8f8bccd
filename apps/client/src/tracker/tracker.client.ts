import { FrameDecoder, formatHostPort, HostPort, Reply, ReplyAssembler } from '@app/protocol';
import { Injectable, OnModuleDestroy } from '@nestjs/common';
import * as net from 'node:net';
import { ClientConfigService } from '../config/client-config.service';
import { TrackerConnectionLostError, TrackerProtocolError, TrackerUnreachableError } from './tracker.errors';

/** A reply line may carry every chunk hash of a large file. */
export const MAX_REPLY_LINE_BYTES = 64 * 1024 * 1024;

interface Pending {
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

interface Connection {
  readonly tracker: HostPort;
  readonly socket: net.Socket;
  pending: Pending | undefined;
}

/**
 * One TCP connection to a tracker, opened on the first tracker in the file
 * that answers. Requests are sent one at a time; each resolves with its
 * reply. A dropped connection fails the request in flight, and the next
 * request connects again (to the first tracker that answers, in file order).
 */
@Injectable()
export class TrackerClient implements OnModuleDestroy {
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  /** Tail of the request queue; never rejects. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly config: ClientConfigService) {}

  /** The tracker currently connected to, if any. */
  get tracker(): HostPort | undefined {
    return this.conn?.tracker;
  }

  /** Connects unless connected; resolves with the tracker that answered. */
  async connect(): Promise<HostPort> {
    return (await this.ensureConnected()).tracker;
  }

  /**
   * Sends one request line (without its newline), plus any continuation lines
   * the command announced (`upload_file ... @N`), and resolves with the reply.
   */
  request(line: string, continuation: readonly string[] = []): Promise<Reply> {
    if ([line, ...continuation].some((l) => /[\r\n]/.test(l))) {
      return Promise.reject(new TrackerProtocolError('a request line must not contain a newline'));
    }
    const text = [line, ...continuation].join('\n');
    const result = this.queue.then(() => this.send(text));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Closes the connection; a request in flight fails. A later request reconnects. */
  close(): void {
    if (this.conn) this.drop(this.conn, new TrackerConnectionLostError(this.conn.tracker));
  }

  onModuleDestroy(): void {
    this.close();
  }

  private async send(line: string): Promise<Reply> {
    const conn = await this.ensureConnected();
    return new Promise<Reply>((resolve, reject) => {
      conn.pending = { resolve, reject };
      conn.socket.write(`${line}\n`);
    });
  }

  private ensureConnected(): Promise<Connection> {
    if (this.conn) return Promise.resolve(this.conn);
    this.connecting ??= this.openFirst().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async openFirst(): Promise<Connection> {
    const { trackers, connectTimeoutMs } = this.config.get();
    for (const tracker of trackers) {
      try {
        const socket = await openSocket(tracker, connectTimeoutMs);
        this.conn = this.attach(tracker, socket);
        return this.conn;
      } catch {
        // try the next tracker
      }
    }
    throw new TrackerUnreachableError(trackers);
  }

  private attach(tracker: HostPort, socket: net.Socket): Connection {
    const conn: Connection = { tracker, socket, pending: undefined };
    const decoder = new FrameDecoder(MAX_REPLY_LINE_BYTES);
    const assembler = new ReplyAssembler();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
        for (let frame = decoder.next(); frame; frame = decoder.next()) {
          if (frame.type !== 'line') throw new Error(`reply line longer than ${MAX_REPLY_LINE_BYTES} bytes`);
          const reply = assembler.push(frame.line);
          if (!reply) continue;
          const pending = conn.pending;
          if (!pending) throw new Error('reply without a request');
          conn.pending = undefined;
          pending.resolve(reply);
        }
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        this.drop(conn, new TrackerProtocolError(`bad reply from tracker ${formatHostPort(tracker)}: ${why}`));
      }
    });
    // The tracker hung up (end), the network failed (error, then close) or we closed it.
    socket.on('error', () => undefined);
    socket.on('end', () => this.drop(conn, new TrackerConnectionLostError(tracker)));
    socket.on('close', () => this.drop(conn, new TrackerConnectionLostError(tracker)));
    return conn;
  }

  private drop(conn: Connection, err: Error): void {
    if (this.conn === conn) this.conn = undefined;
    const pending = conn.pending;
    conn.pending = undefined;
    conn.socket.destroy();
    pending?.reject(err);
  }
}

/** Opens a TCP connection or fails after `timeoutMs`. */
function openSocket(tracker: HostPort, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: tracker.host, port: tracker.port });
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error('connect timed out')), timeoutMs);
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      resolve(socket);
    });
  });
}
