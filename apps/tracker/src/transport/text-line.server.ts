import {
  Command,
  commandFromTokens,
  continuationLines,
  Frame,
  DEFAULT_MAX_LINE_BYTES,
  errReply,
  ErrorCode,
  ErrReply,
  formatReply,
  FrameDecoder,
  okReply,
  ProtocolError,
  Reply,
  SYNC_MARKER,
  tokenize,
  withContinuation,
} from '@app/protocol';
import { Logger } from '@nestjs/common';
import { CustomTransportStrategy, Server } from '@nestjs/microservices';
import { AddressInfo, createServer, Server as NetServer, Socket } from 'node:net';
import { lastValueFrom } from 'rxjs';
import { DomainError } from '../common/domain.error';
import { PeerContext } from './peer.context';
import { TransportEvent } from './transport.events';

export interface TextLineServerOptions {
  readonly host: string;
  readonly port: number;
  readonly maxLineBytes?: number;
  /** Connections idle for this long are closed (0: never). */
  readonly idleTimeoutMs?: number;
}

/** Stop reading from a connection while this many bytes wait to be handled or sent. */
const BACKPRESSURE_BYTES = 1024 * 1024;

/**
 * Nest transport for the tracker's line protocol: one request line in, one
 * reply (`OK <n> <message>` + n lines, or `ERR <CODE> <message>`) out, in
 * order, per TCP connection. The first word names the `@MessagePattern`.
 */
export class TextLineServer extends Server implements CustomTransportStrategy {
  protected override readonly logger = new Logger(TextLineServer.name);
  private server: NetServer | undefined;
  private readonly sockets = new Set<Socket>();
  private nextConnectionId = 1;

  constructor(private readonly options: TextLineServerOptions) {
    super();
  }

  listen(callback: (...optionalParams: unknown[]) => unknown): void {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server = server;
    server.once('error', (err) => callback(err));
    server.listen(this.options.port, this.options.host, () => {
      server.removeAllListeners('error');
      server.on('error', (err) => this.logger.error(`listener error: ${err.message}`));
      callback();
    });
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  on(event: string, callback: Function): void {
    if (!this.server) throw new Error('TextLineServer is not listening');
    this.server.on(event, callback as (...args: unknown[]) => void);
  }

  unwrap<T>(): T {
    if (!this.server) throw new Error('TextLineServer is not listening');
    return this.server as T;
  }

  address(): AddressInfo {
    return this.unwrap<NetServer>().address() as AddressInfo;
  }

  private accept(socket: Socket): void {
    const ctx = new PeerContext(this.nextConnectionId++, `${socket.remoteAddress}:${socket.remotePort}`);
    const decoder = new FrameDecoder(this.options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    let pumping = false;
    let ended = false;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    if (this.options.idleTimeoutMs) socket.setTimeout(this.options.idleTimeoutMs, () => socket.destroy());

    /** A command whose continuation lines (`upload_file ... @N`) are still arriving. */
    let pending: { command: Command; need: number; lines: string[]; overflows: number } | undefined;
    const tooLong = () => errReply(ErrorCode.LineTooLong, `line longer than ${decoder.maxLineBytes} bytes ignored`);

    const step = async (frame: Frame): Promise<Reply | undefined> => {
      if (pending) {
        if (frame.type === 'line') pending.lines.push(frame.line);
        else pending.overflows++;
        if (pending.lines.length + pending.overflows < pending.need) return undefined;
        const done = pending;
        pending = undefined;
        return done.overflows > 0 ? tooLong() : this.dispatch(withContinuation(done.command, done.lines), ctx);
      }
      if (frame.type !== 'line') return tooLong();
      const parsed = this.parseLine(frame.line);
      if (parsed === undefined || 'ok' in parsed) return parsed;
      const need = continuationLines(parsed);
      if (need === 0) return this.dispatch(parsed, ctx);
      pending = { command: parsed, need, lines: [], overflows: 0 };
      return undefined;
    };

    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        for (let frame = decoder.next(); frame && !socket.destroyed; frame = decoder.next()) {
          const reply = await step(frame).catch((err: unknown) => this.toErrorReply(err));
          if (reply && !socket.destroyed && socket.writable) {
            const flushed = socket.write(formatReply(reply));
            if (!flushed) await new Promise<void>((resolve) => socket.once('drain', resolve).once('close', resolve));
          }
        }
      } finally {
        pumping = false;
        if (ended)
          socket.end(); // the peer half-closed: every request it sent has been answered
        else if (!socket.destroyed && socket.isPaused() && decoder.bufferedBytes < BACKPRESSURE_BYTES) socket.resume();
      }
    };

    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      if (decoder.bufferedBytes >= BACKPRESSURE_BYTES) socket.pause();
      void pump();
    });
    socket.on('end', () => {
      ended = true;
      if (decoder.bufferedBytes > 0) decoder.push(Buffer.from('\n')); // a last line without its newline still counts
      void pump();
    });
    socket.on('error', (err) => this.logger.debug(`connection ${ctx.connectionId} error: ${err.message}`));
    socket.on('close', () => {
      this.sockets.delete(socket);
      void this.handleEvent(
        TransportEvent.PeerClosed,
        { pattern: TransportEvent.PeerClosed, data: undefined },
        ctx,
      ).catch((err: unknown) => this.logger.error(`close handler failed: ${String(err)}`));
    });
  }

  /** Turns one complete request line into its reply; undefined for a blank line. */
  async handleLine(line: string, ctx: PeerContext): Promise<Reply | undefined> {
    const parsed = this.parseLine(line);
    return parsed === undefined || 'ok' in parsed ? parsed : this.dispatch(parsed, ctx);
  }

  /** A command, an error reply for a line that is not one, or undefined for a blank line. */
  private parseLine(line: string): Command | ErrReply | undefined {
    try {
      const tokens = tokenize(line);
      if (tokens.length === 0) return undefined;
      const [name, ...args] = tokens;
      if (name === SYNC_MARKER) {
        return errReply(ErrorCode.Forbidden, 'only a tracker of this network may send sync lines');
      }
      return commandFromTokens(name, args);
    } catch (err) {
      return this.toErrorReply(err);
    }
  }

  /** Runs the `@MessagePattern` named by the command and turns its outcome into a reply. */
  private async dispatch(command: Command, ctx: PeerContext): Promise<Reply> {
    try {
      const handler = this.getHandlerByPattern(command.kind);
      if (!handler || handler.isEventHandler) {
        return errReply(ErrorCode.UnknownCommand, `this tracker does not serve '${command.kind}'`);
      }
      const result: unknown = await lastValueFrom(this.transformToObservable(await handler(command, ctx)), {
        defaultValue: undefined,
      });
      return toReply(result);
    } catch (err) {
      return this.toErrorReply(err);
    }
  }

  private toErrorReply(err: unknown): ErrReply {
    if (err instanceof DomainError || err instanceof ProtocolError) return errReply(err.code, err.message);
    this.logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return errReply(ErrorCode.Internal, 'internal error; the request was not completed');
  }
}

function toReply(result: unknown): Reply {
  if (typeof result === 'string') return okReply(result);
  if (result && typeof result === 'object' && 'ok' in result) return result as Reply;
  return okReply('');
}
