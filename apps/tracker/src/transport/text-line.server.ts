import {
  Cmd,
  Command,
  commandFromTokens,
  continuationLines,
  Frame,
  errReply,
  ErrorCode,
  ErrReply,
  formatReplyIn,
  HELLO,
  HELLO_LINE,
  PROTOCOL_NAME,
  renderReply,
  ReplyForm,
  ReplyLine,
  WirePiece,
  FrameDecoder,
  StreamedFrame,
  okReply,
  ProtocolError,
  Reply,
  SYNC_MARKER,
  isSyncCommand,
  REQUEST_ID,
  STARTTLS,
  SyncCmd,
  tokenize,
  withContinuation,
} from '@app/protocol';
import { Logger } from '@nestjs/common';
import { CustomTransportStrategy, MessageHandler, Server } from '@nestjs/microservices';
import { AddressInfo, createServer, Server as NetServer, Socket } from 'node:net';
import { SecureContext, TLSSocket } from 'node:tls';
import { acceptTls, Identity, peerFingerprint, serverContext, sniffStartTls } from '@app/tls';
import { isObservable, lastValueFrom } from 'rxjs';
import { DomainError } from '../common/domain.error';
import { RepeatThrottle } from '../logging/repeat-throttle';
import { RequestContext, requestContext } from '../common/request-context';
import { PeerContext } from './peer.context';
import { ConnectionPolicy, ConnectionSlot, FORM_PROBE_BYTES, Refusal, refusalForm } from './connection.policy';
import { TransportEvent } from './transport.events';
import { UploadLineReader } from './upload-line.reader';
import { DEFAULT_TRACKER_LIMITS, MAX_SYNC_LINE_BYTES } from '../config/tracker.config';

export interface TextLineServerOptions {
  readonly host: string;
  readonly port: number;
  /** Connection admission, idle timeouts and buffering limits (default: the tracker's default limits). */
  readonly policy?: ConnectionPolicy;
  /** Told of each refusal the transport answers itself (metrics). */
  readonly observer?: { refused(code: string): void };
  /**
   * The tracker's TLS identity: a connection whose first line is `STARTTLS`
   * continues inside TLS with it (docs/PROTOCOL.md 8). Without one, `STARTTLS`
   * is a command like any other (an unknown one).
   */
  readonly identity?: Identity;
}

/** Longest TLS handshake waited for after `OK 0 STARTTLS`. */
const MAX_HANDSHAKE_MS = 10_000;

/** Lines from an authenticated tracker carry whole hash lists: as long as the longest op any tracker commits. */
const TRACKER_MAX_LINE_BYTES = MAX_SYNC_LINE_BYTES;

/** One parsed request: the pattern of its handler, what the handler gets, and the client's `#id`. */
interface Request {
  readonly pattern: string;
  readonly payload: Command | SyncPayload;
  readonly requestId: string;
}

/** What a `123456789 ...` line hands its handler: the words after the marker and the command name. */
export interface SyncPayload {
  readonly name: string;
  readonly args: readonly string[];
}

/** The answer to a sync line from a peer that is not (yet) a tracker; framed like every answer to a sync line. */
const SYNC_FORBIDDEN = errReply(ErrorCode.Forbidden, 'only a tracker of this network may send sync lines');
const SYNC_PREFIX = `${SYNC_MARKER} `;

/** Refusals of a limit (README "Limits"): logged as warnings, naming the limit and the address. */
const LIMIT_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.TooManyConnections,
  ErrorCode.LineTooLong,
  ErrorCode.RequestTooLarge,
  ErrorCode.TryLater,
  ErrorCode.Busy,
]);

/**
 * The request a frame carries, for log lines: the transport names it `c<connection>-<n>` until its line shows
 * the client's `#id`. Its `requestId` stays '' (ops take the client's id from the context `dispatch` opens).
 */
class FrameScope implements RequestContext {
  readonly requestId = '';
  constructor(public logId: string) {}
}

/**
 * Nest transport for the tracker's line protocol: one request line in, one
 * reply out, in order, per TCP connection. The first word names the
 * `@MessagePattern`. A connection speaks the seed form (readable text
 * replies, `error: <message>`) until its first line is `HELLO p2p-share/2`;
 * then the extended form (`OK <n> <message>` + n lines, `ERR <CODE>
 * <message>`, request ids, continuation lines). Sync lines are always
 * answered framed.
 */
export class TextLineServer extends Server implements CustomTransportStrategy {
  protected override readonly logger = new Logger(TextLineServer.name);
  private server: NetServer | undefined;
  private readonly sockets = new Set<Socket>();
  private nextConnectionId = 1;
  /** Handlers found so far, by pattern: Nest's own lookup re-parses the pattern as JSON on every call. */
  private readonly handlers = new Map<string, MessageHandler>();
  /** While set, client requests wait for it (trackers' sync lines do not). */
  private clientGate: Promise<unknown> | undefined;
  private readonly policy: ConnectionPolicy;
  /** How to close each admitted connection with a refusal (the idle sweep uses it). */
  private readonly shutters = new Map<ConnectionSlot, (refusal: Refusal) => void>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Made from the identity on the first `STARTTLS`, then shared by every TLS connection. */
  private tlsContext: SecureContext | undefined;
  /** One line per limit and address every 10 s at most: an attack on a limit does not flood the log. */
  private readonly limitLog = new RepeatThrottle(1);
  /** Of other errors, 20 lines per code and address every 10 s at most (a client looping on an error, a fuzzer). */
  private readonly errorLog = new RepeatThrottle(20);

  constructor(private readonly options: TextLineServerOptions) {
    super();
    this.policy = options.policy ?? new ConnectionPolicy(DEFAULT_TRACKER_LIMITS);
  }

  /**
   * Holds every client request until `ready` settles (a tracker that is still
   * catching up with its peers must not answer from stale state). Sync lines
   * from other trackers are served meanwhile: they are how it catches up.
   */
  holdClientsUntil(ready: Promise<unknown>): void {
    const gate = ready.then(
      () => undefined,
      () => undefined,
    );
    this.clientGate = gate;
    void gate.then(() => {
      if (this.clientGate === gate) this.clientGate = undefined;
    });
  }

  listen(callback: (...optionalParams: unknown[]) => unknown): void {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server = server;
    server.once('error', (err) => callback(err));
    server.listen(this.options.port, this.options.host, () => {
      server.removeAllListeners('error');
      server.on('error', (err) => this.logger.error(`listener error: ${err.message}`));
      const every = this.policy.sweepEveryMs;
      if (every > 0) this.sweeper = setInterval(() => this.closeIdle(), every).unref();
      callback();
    });
  }

  close(): Promise<void> {
    clearInterval(this.sweeper);
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

  private accept(raw: Socket): void {
    const ctx = new PeerContext(this.nextConnectionId++, `${raw.remoteAddress}:${raw.remotePort}`);
    this.sockets.add(raw);
    raw.on('error', (err) => this.logger.debug(`connection ${ctx.connectionId} error: ${err.message}`));
    const slot = this.policy.admit(raw.remoteAddress, ctx);
    if (!(slot instanceof ConnectionSlot)) {
      this.options.observer?.refused(slot.reply.code);
      this.logAnswer(slot.reply, ctx);
      raw.on('close', () => this.sockets.delete(raw));
      shutUnread(raw, slot); // in the form its first bytes ask for (a STARTTLS is answered in clear, framed)
      return;
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.sockets.delete(raw);
      this.shutters.delete(slot);
      slot.release();
      ctx.closed();
      void this.handleEvent(
        TransportEvent.PeerClosed,
        { pattern: TransportEvent.PeerClosed, data: undefined },
        ctx,
      ).catch((err: unknown) => this.logger.error(`close handler failed: ${String(err)}`));
    };
    raw.once('close', release);
    const identity = this.options.identity;
    if (!identity) {
      this.serve(raw, ctx, slot, release);
      return;
    }
    // registered before the first bytes are read: a peer that sends nothing is closed by the idle sweep as today
    let opening = true;
    this.shutters.set(slot, (refusal) => {
      if (!opening) return;
      opening = false;
      this.options.observer?.refused(refusal.reply.code);
      this.logger.debug(`connection ${ctx.connectionId} from ${ctx.remoteAddress} closed: ${refusal.reply.code}`);
      shut(raw, refusal, 'seed');
    });
    void sniffStartTls(raw).then(async (first) => {
      if (!opening || raw.destroyed) return;
      if (first.kind === 'plain') {
        opening = false;
        this.serve(raw, ctx, slot, release, first.head, first.ended);
        return;
      }
      if (first.kind === 'injected') {
        // bytes behind STARTTLS came in clear before TLS: they could be anyone's
        this.logger.debug(`connection ${ctx.connectionId} from ${ctx.remoteAddress}: bytes after STARTTLS, closed`);
        opening = false;
        raw.destroy();
        return;
      }
      slot.touch();
      // a stalled handshake is cut silently: nothing can be written in clear into it
      this.shutters.set(slot, () => raw.destroy());
      try {
        const tls = await acceptTls(raw, {
          context: (this.tlsContext ??= serverContext(identity)),
          requestCert: true,
          timeoutMs: this.handshakeTimeoutMs(),
        });
        opening = false;
        tls.once('close', release);
        ctx.tls = {
          peerFingerprint: peerFingerprint(tls),
          // no context (RFC 5705): Node takes an absent context, its types do not say so
          exportKeyingMaterial: (length, label) =>
            tls.exportKeyingMaterial(length, label, undefined as unknown as Buffer),
        };
        this.serve(tls, ctx, slot, release);
      } catch (err) {
        opening = false;
        this.logger.debug(`connection ${ctx.connectionId} from ${ctx.remoteAddress}: ${(err as Error).message}`);
        raw.destroy();
      }
    });
  }

  /** At most 10 s for the TLS handshake, and never longer than a connection may stay silent before login. */
  private handshakeTimeoutMs(): number {
    const idle = this.policy.limits.idleTimeoutLoginMs;
    return idle > 0 ? Math.min(MAX_HANDSHAKE_MS, idle) : MAX_HANDSHAKE_MS;
  }

  /**
   * Serves one admitted connection on `socket` (the TCP socket, or the TLS
   * socket once a `STARTTLS` was accepted): `head` are bytes already read
   * from it, `ended` that the peer has half-closed meanwhile.
   */
  private serve(
    socket: Socket,
    ctx: PeerContext,
    slot: ConnectionSlot,
    release: () => void,
    head?: Buffer,
    headEnded = false,
  ): void {
    if (socket instanceof TLSSocket) {
      socket.on('error', (err: Error) => this.logger.debug(`connection ${ctx.connectionId} error: ${err.message}`));
    }
    const decoder = new FrameDecoder(slot.maxLineBytes(TRACKER_MAX_LINE_BYTES));
    let pumping = false;
    let ended = false;
    /** Set once the connection is being closed for a limit: nothing more is read or answered. */
    let closing = false;
    let trusted = false;
    /** No line has arrived yet: the next one may be the HELLO. */
    let first = true;
    /** The line just handled was a sync line (`123456789 ...`): its reply is framed whatever the form. */
    let syncLine = false;
    /** Frames read so far, to name the requests that carry no `#id`. */
    let frames = 0;
    socket.setNoDelay(true);
    const close = (refusal: Refusal): void => {
      if (closing) return;
      closing = true;
      this.options.observer?.refused(refusal.reply.code);
      this.logger.debug(`connection ${ctx.connectionId} from ${ctx.remoteAddress} closed: ${refusal.reply.code}`);
      shut(socket, refusal, ctx.extended || ctx.link ? 'extended' : 'seed');
    };
    this.shutters.set(slot, close);

    /** A command whose continuation lines (`upload_file ... @N`) are still arriving. */
    let pending: { request: Request; need: number; lines: string[]; overflows: number } | undefined;
    /** The refusal just answered closes the connection. */
    let closeAfterReply = false;
    const tooLong = () => {
      this.options.observer?.refused(ErrorCode.LineTooLong);
      return errReply(ErrorCode.LineTooLong, `line longer than ${decoder.maxLineBytes} bytes ignored`);
    };
    const refuse = (refusal: Refusal): Reply => {
      closeAfterReply = refusal.close;
      if (!refusal.close) this.options.observer?.refused(refusal.reply.code);
      return refusal.reply;
    };
    // a logged-in client's upload_file with every hash inline, longer than a line, is read as it streams in
    decoder.divert = (start) =>
      pending || ctx.link || slot.maxUploadLineBytes() === 0
        ? undefined
        : UploadLineReader.start(start, {
            maxHeadBytes: decoder.maxLineBytes,
            maxLineBytes: slot.maxUploadLineBytes(),
            requestIds: ctx.extended,
            reserve: (bytes) => {
              const refusal = slot.holdDigests(bytes);
              return refusal && new ProtocolError(refusal.reply.code as ErrorCode, refusal.reply.message);
            },
          });
    const streamed = async (frame: StreamedFrame): Promise<Reply<ReplyLine>> => {
      try {
        const outcome = (frame.sink as UploadLineReader).outcome();
        if (!outcome.ok) return this.toErrorReply(outcome.error);
        return await this.dispatch(
          { pattern: Cmd.UploadFile, payload: outcome.command, requestId: outcome.requestId },
          ctx,
        );
      } finally {
        slot.dropHeld();
      }
    };

    const step = async (frame: Frame | StreamedFrame): Promise<Reply<ReplyLine> | undefined> => {
      syncLine = false;
      if (frame.type === 'streamed') return streamed(frame);
      if (pending) {
        if (frame.type === 'line') {
          const refusal = slot.hold(Buffer.byteLength(frame.line));
          if (refusal) {
            // the command is refused now; the rest of its lines are dropped unread
            slot.dropHeld();
            decoder.skipLines(pending.need - pending.lines.length - pending.overflows - 1);
            pending = undefined;
            return refuse(refusal);
          }
          pending.lines.push(frame.line);
        } else {
          pending.overflows++;
        }
        if (pending.lines.length + pending.overflows < pending.need) return undefined;
        const done = pending;
        pending = undefined;
        slot.dropHeld();
        if (done.overflows > 0) return tooLong();
        const command = withContinuation(done.request.payload as Command, done.lines);
        return this.dispatch({ ...done.request, payload: command }, ctx);
      }
      if (first) {
        first = false;
        if (frame.type === 'line' && frame.line === HELLO_LINE) {
          ctx.extended = true;
          return okReply(PROTOCOL_NAME);
        }
      }
      if (frame.type !== 'line') return tooLong();
      const parsed = this.parseLine(frame.line, ctx);
      if (parsed === undefined) return undefined;
      syncLine = 'ok' in parsed ? parsed === SYNC_FORBIDDEN : parsed.pattern.startsWith(SYNC_PREFIX);
      if ('ok' in parsed) return parsed;
      // `@N` continuation is an extension: in the seed form `@N` is only a malformed list
      const need = ctx.extended && 'kind' in parsed.payload ? continuationLines(parsed.payload) : 0;
      if (need === 0) return this.dispatch(parsed, ctx);
      const refusal = slot.mayContinue();
      if (!refusal) {
        pending = { request: parsed, need, lines: [], overflows: 0 };
        return undefined;
      }
      decoder.skipLines(need); // never held, never read as commands
      return refuse(refusal);
    };

    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        for (let frame = decoder.nextFrame(); frame && !socket.destroyed && !closing; frame = decoder.nextFrame()) {
          const opened = ctx.link && frame.type !== 'streamed' ? this.openLinked(ctx, frame, socket) : frame;
          if (!opened) break;
          slot.touch();
          slot.busy++;
          const scope = new FrameScope(`c${ctx.connectionId}-${++frames}`);
          const reply = await requestContext
            .run(scope, () =>
              step(opened)
                .catch((err: unknown) => this.toErrorReply(err))
                .then((answer) => {
                  if (answer && 'code' in answer) this.logAnswer(answer, ctx);
                  return answer;
                }),
            )
            .finally(() => slot.busy--);
          if (ctx.trackerNumber !== undefined && !trusted) {
            trusted = true;
            slot.authenticated();
            decoder.maxLineBytes = slot.maxLineBytes(TRACKER_MAX_LINE_BYTES);
          }
          if (closeAfterReply && reply && 'code' in reply) {
            close({ reply, close: true });
            break;
          }
          if (reply && !socket.destroyed && socket.writable) {
            const form: ReplyForm = ctx.extended || syncLine ? 'extended' : 'seed';
            // a tracker link's replies are sync replies: text lines only
            const pieces = ctx.link ? ctx.link.sealReply(reply as Reply) : renderReply(reply, form);
            const flushed = writeReply(socket, pieces);
            if (flushed !== true) await (flushed === false ? drained(socket) : flushed);
            slot.touch();
          }
        }
      } finally {
        pumping = false;
        if (closing) {
          // a limit closed it: what the peer sent after that is not read
        } else if (ended)
          socket.end(); // the peer half-closed: every request it sent has been answered
        else if (
          !socket.destroyed &&
          socket.isPaused() &&
          decoder.bufferedBytes < slot.readAheadBytes(decoder.maxLineBytes)
        )
          socket.resume();
      }
    };

    const onData = (chunk: Buffer) => {
      if (closing) return;
      decoder.push(chunk);
      if (decoder.bufferedBytes >= slot.readAheadBytes(decoder.maxLineBytes)) socket.pause();
      void pump();
    };
    const onEnd = () => {
      ended = true;
      if (decoder.bufferedBytes > 0) decoder.push(Buffer.from('\n')); // a last line without its newline still counts
      void pump();
    };
    socket.on('data', onData).on('end', onEnd).once('close', release);
    // the bytes read to see whether the connection asked for TLS are its first bytes
    if (head && head.length > 0) onData(head);
    if (headEnded) onEnd();
    else if (decoder.bufferedBytes < slot.readAheadBytes(decoder.maxLineBytes)) socket.resume();
  }

  /** A tracker link's line without its MAC; undefined (and the link closed) when the MAC is missing or wrong. */
  private openLinked(ctx: PeerContext, frame: Frame, socket: Socket): Frame | undefined {
    try {
      return { type: 'line', line: ctx.link!.openRequest(frame) };
    } catch (err) {
      this.logger.warn(`closing the link from tracker ${ctx.trackerNumber} (${ctx.remoteAddress}): ${String(err)}`);
      socket.destroy();
      return undefined;
    }
  }

  /** Closes every connection idle past the policy's timeout, each with one `ERR IDLE_TIMEOUT` line. */
  private closeIdle(): void {
    for (const slot of this.policy.idle()) {
      const refusal = slot.idleRefusal();
      this.logger.log({ message: `closed an idle connection: ${refusal.reply.message}`, code: refusal.reply.code });
      this.shutters.get(slot)?.(refusal);
    }
  }

  /**
   * One line per error answered: its code and reason, who asked (address, user or tracker), inside the request's
   * context (so with its id). A refusal of a limit is a warning naming the limit; an internal error was logged
   * with its stack where it was caught.
   */
  private logAnswer(reply: ErrReply, ctx: PeerContext): void {
    if (reply.code === ErrorCode.Internal) return;
    const who = {
      address: ctx.remoteAddress,
      ...(ctx.user !== undefined && { user: ctx.user }),
      ...(ctx.trackerNumber !== undefined && { peer: ctx.trackerNumber }),
    };
    const verdict = (LIMIT_CODES.has(reply.code) ? this.limitLog : this.errorLog).admit(
      `${reply.code} ${ctx.remoteHost}`,
    );
    if (!verdict.log) return;
    const more =
      verdict.suppressed > 0 ? ` (${verdict.suppressed} more like it from ${ctx.remoteHost} not logged)` : '';
    // a reason may quote what the peer sent (an unknown command's name): the line stays short
    const reason = reply.message.length > 200 ? `${reply.message.slice(0, 200)}...` : reply.message;
    const fields = { code: reply.code, ...who, ...(verdict.suppressed > 0 && { suppressed: verdict.suppressed }) };
    if (LIMIT_CODES.has(reply.code)) {
      this.logger.warn({ message: `refused (limit ${reply.code}): ${reason}${more}`, limit: reply.code, ...fields });
    } else {
      this.logger.log({ message: `answered ERR ${reply.code}: ${reason}${more}`, ...fields });
    }
  }

  /** Turns one complete request line into its reply; undefined for a blank line. */
  async handleLine(line: string, ctx: PeerContext): Promise<Reply<ReplyLine> | undefined> {
    const parsed = this.parseLine(line, ctx);
    return parsed === undefined || 'ok' in parsed ? parsed : this.dispatch(parsed, ctx);
  }

  /** A request, an error reply for a line that is not one, or undefined for a blank line. */
  private parseLine(line: string, ctx: PeerContext): Request | ErrReply | undefined {
    try {
      const tokens = tokenize(line);
      let requestId = '';
      // request ids are an extension: in the seed form `#1` is a command name like any other (an unknown one)
      const id = ctx.extended && tokens.length > 0 ? REQUEST_ID.exec(tokens[0]) : null;
      if (id) {
        requestId = id[1];
        tokens.shift();
      } else if (ctx.extended && tokens[0]?.startsWith('#')) {
        return errReply(ErrorCode.BadSyntax, 'a request id is # and 1-64 letters, digits, _ or -');
      }
      if (tokens.length === 0)
        return requestId ? errReply(ErrorCode.BadSyntax, 'a request id needs a command') : undefined;
      const [name, ...args] = tokens;
      if (name === SYNC_MARKER) return this.parseSync(args, ctx);
      if (name === HELLO && ctx.extended) return errReply(ErrorCode.BadSyntax, 'HELLO is only the first line');
      if (name === STARTTLS && ctx.extended) return errReply(ErrorCode.BadSyntax, 'STARTTLS is only the first line');
      return { pattern: name, payload: commandFromTokens(name, args), requestId };
    } catch (err) {
      return this.toErrorReply(err);
    }
  }

  /** `123456789 <name> ...`: only the handshake is open to a peer that has not proved it is a tracker. */
  private parseSync(args: readonly string[], ctx: PeerContext): Request | ErrReply {
    const [name, ...rest] = args;
    const open = name === SyncCmd.Hello || name === SyncCmd.Auth;
    if (name === undefined || (!open && ctx.trackerNumber === undefined)) return SYNC_FORBIDDEN;
    const pattern = isSyncCommand(name) ? `${SYNC_MARKER} ${name}` : `${SYNC_MARKER} op`;
    return { pattern, payload: { name, args: rest }, requestId: '' };
  }

  /** Runs the `@MessagePattern` of the request and turns its outcome into a reply. */
  private async dispatch(request: Request, ctx: PeerContext): Promise<Reply<ReplyLine>> {
    try {
      const handler = this.handlerFor(request.pattern);
      if (!handler) {
        return errReply(ErrorCode.UnknownCommand, `this tracker does not serve '${request.pattern}'`);
      }
      if (this.clientGate && 'kind' in request.payload) await this.clientGate;
      const scope = requestContext.getStore();
      if (request.requestId && scope instanceof FrameScope) scope.logId = request.requestId;
      const logId = request.requestId || scope?.logId;
      const result = await requestContext.run({ requestId: request.requestId, ...(logId && { logId }) }, () =>
        settle(handler(request.payload, ctx)),
      );
      return toReply(result);
    } catch (err) {
      return this.toErrorReply(err);
    }
  }

  private handlerFor(pattern: string): MessageHandler | undefined {
    let handler = this.handlers.get(pattern);
    if (handler === undefined) {
      handler = this.getHandlerByPattern(pattern) ?? undefined;
      // only patterns that exist are remembered: a client cannot grow the map with made-up names
      if (handler === undefined || handler.isEventHandler) return undefined;
      this.handlers.set(pattern, handler);
    }
    return handler;
  }

  private toErrorReply(err: unknown): ErrReply {
    if (err instanceof DomainError || err instanceof ProtocolError) return errReply(err.code, err.message);
    this.logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return errReply(ErrorCode.Internal, 'internal error; the request was not completed');
  }
}

/** How long a refused peer has to read its one error line before the connection is cut. */
const SHUT_GRACE_MS = 2000;

/** Writes the refusal in `form`, ends the connection and destroys it once the line is out (or after a grace period). */
function shut(socket: Socket, refusal: Refusal, form: ReplyForm): void {
  socket.pause();
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), SHUT_GRACE_MS).unref();
  socket.once('close', () => clearTimeout(timer));
  socket.end(formatReplyIn(refusal.reply, form), () => socket.destroy());
}

/** How long a connection refused at admission is given to show its form with its first bytes. */
export const REFUSAL_FORM_WAIT_MS = 1000;
/** Refused connections waiting for their first bytes at once; past this, the next ones get the seed form at once. */
const MAX_REFUSALS_WAITING = 256;
let refusalsWaiting = 0;

/**
 * A connection refused before its first line: its first bytes tell the form of
 * the refusal (see `refusalForm`). Waits up to `waitMs` for enough of them,
 * keeping no more than `FORM_PROBE_BYTES`, then shuts it.
 */
export function shutUnread(socket: Socket, refusal: Refusal, waitMs = REFUSAL_FORM_WAIT_MS): void {
  if (socket.destroyed) return;
  if (refusalsWaiting >= MAX_REFUSALS_WAITING) {
    shut(socket, refusal, 'seed');
    return;
  }
  refusalsWaiting++;
  let seen = Buffer.alloc(0);
  let decided = false;
  const decide = (form: ReplyForm): void => {
    if (decided) return;
    decided = true;
    refusalsWaiting--;
    clearTimeout(timer);
    socket.off('data', onData).off('end', onEnd).off('close', onEnd);
    shut(socket, refusal, form);
  };
  const onEnd = () => decide(refusalForm(seen, true) ?? 'seed');
  const onData = (chunk: Buffer): void => {
    seen = Buffer.concat([seen, chunk.subarray(0, FORM_PROBE_BYTES - seen.length)]);
    const form = refusalForm(seen, seen.length >= FORM_PROBE_BYTES);
    if (form) decide(form);
  };
  const timer = setTimeout(onEnd, waitMs).unref();
  socket.on('data', onData).once('end', onEnd).once('close', onEnd);
}

/**
 * Writes a reply; false when the socket asks the writer to wait for 'drain'.
 * A reply with a long line streamed in pieces is written as the socket
 * drains, one piece at a time: a promise that settles when all of it is out.
 */
function writeReply(socket: Socket, pieces: WirePiece[]): boolean | Promise<void> {
  if (pieces.some((p) => 'chunks' in p)) return writeStreamed(socket, pieces);
  if (pieces.length === 1) return writeText(socket, pieces[0]);
  socket.cork();
  for (const piece of pieces) writeText(socket, piece);
  socket.uncork();
  return !socket.writableNeedDrain;
}

const writeText = (socket: Socket, piece: WirePiece): boolean =>
  'chunks' in piece ? true : socket.write(piece.text, piece.encoding);

async function writeStreamed(socket: Socket, pieces: WirePiece[]): Promise<void> {
  for (const piece of pieces) {
    if (socket.destroyed) return;
    if (!('chunks' in piece)) {
      if (!writeText(socket, piece)) await drained(socket);
      continue;
    }
    for (const chunk of piece.chunks) {
      if (socket.destroyed) return;
      if (!socket.write(chunk)) await drained(socket);
    }
  }
}

/** Resolves when the socket wants more data or is gone; leaves no listener behind either way. */
function drained(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off('drain', done).off('close', done);
      resolve();
    };
    socket.on('drain', done).on('close', done);
  });
}

/** A handler's outcome: Nest hands back a promise of a value or of an observable (with interceptors). */
async function settle(outcome: Promise<unknown>): Promise<unknown> {
  const value: unknown = await outcome;
  return isObservable(value) ? lastValueFrom(value, { defaultValue: undefined }) : value;
}

function toReply(result: unknown): Reply<ReplyLine> {
  if (typeof result === 'string') return okReply(result);
  if (result && typeof result === 'object' && 'ok' in result) return result as Reply<ReplyLine>;
  return okReply('');
}
