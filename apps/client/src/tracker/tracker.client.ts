import { LineConnectError, LineConnection, LineConnectionEnd, MAX_REPLY_LINE_BYTES } from '@app/line-client';
import { ErrorCode, errReply, formatHostPort, HostPort, joinArgs, okReply, Reply } from '@app/protocol';
import {
  FingerprintMismatchError,
  KNOWN_TRACKERS_FILE,
  KnownTrackers,
  StartTlsRefusedError,
  TlsHandshakeError,
  trackerVerifier,
} from '@app/tls';
import { Inject, Injectable, OnModuleDestroy, Optional } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { ClientIdentityService } from '../config/client-identity.service';
import { OUTPUT, OutputPort } from '../output/output.port';
import {
  TrackerConnectionLostError,
  TrackerFailoverError,
  TrackerProtocolError,
  TrackerUnreachableError,
} from './tracker.errors';
import { DEFAULT_TRACKER_TIMINGS, TRACKER_TIMINGS, TrackerTimings } from './tracker.tokens';

export { MAX_REPLY_LINE_BYTES };

/** One tracker of the tracker info file as this client last found it. */
export interface TrackerState {
  readonly tracker: HostPort;
  /** The one the client is connected to now. */
  readonly inUse: boolean;
  /** Why the last attempt to connect to it failed, when it did (cleared once it answers). */
  readonly lastFailure?: string;
}

/**
 * How the connection to the tracker in use is protected: `tls` with the
 * fingerprint of the certificate it presented (checked against its pin or
 * known_trackers), or `plain` (`--no-tls`).
 */
export type TrackerLinkSecurity = { readonly kind: 'tls'; readonly fingerprint: string } | { readonly kind: 'plain' };

/** Called with the tracker now in use; must not throw, may send requests (they queue up). */
export type TrackerListener = (tracker: HostPort) => void;

/**
 * Why a connection ended: the tracker went away (`gone`: fail over and send the
 * request in flight again), it closed an idle connection (`idle`: connect to the
 * same tracker again, quietly, and send the request in flight again), it sent
 * something that is not a reply (`bad`: fail the request, the next one goes to
 * another tracker), or we closed it (`closed`).
 */
class Broken extends Error {
  constructor(
    readonly kind: 'gone' | 'idle' | 'bad' | 'closed',
    readonly error: Error,
  ) {
    super(error.message);
  }
}

interface Pending {
  readonly timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  /** Bytes of the request still queued in the socket at the last check: a large request still going out. */
  unsent: number;
  resolve(reply: Reply): void;
  reject(why: Broken): void;
}

interface Connection {
  /** Position of the tracker in the tracker info file. */
  readonly index: number;
  readonly tracker: HostPort;
  readonly line: LineConnection;
  /** The fingerprint of the tracker's certificate; undefined on a plain (`--no-tls`) connection. */
  readonly fingerprint: string | undefined;
  pending: Pending | undefined;
  dead: boolean;
}

type SessionState = 'none' | 'resumed' | 'lost' | 'expired' | 'broken';

/**
 * The client's one connection to a tracker, with failover.
 *
 * Requests are serialized and each is sent as `#<id> <line>` with an id that is
 * unique in this process. When the connection breaks (closed, failed, or no byte
 * of the reply for `replyTimeoutMs`) with a request in flight, or the next request
 * finds it broken, the client connects to the next tracker in file order
 * (wrapping around; for up to `failoverWindowMs`), sends `resume <token>` first
 * when it knows a session token, then sends the request again with the same id,
 * so the network applies it at most once. One notice line per failover goes to
 * the output; `onResumed` and `onSessionLost` listeners hear about the session.
 * A connection that breaks while idle with a session known is replaced at once,
 * so the session (and what hangs off it, such as seeding) moves without waiting
 * for the next command.
 */
@Injectable()
export class TrackerClient implements OnModuleDestroy {
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  /** Why the last tracker that answered our HELLO refused the connection (`TOO_MANY_CONNECTIONS`, ...). */
  private lastRefusal: string | undefined;
  /** The connection that broke and has not been replaced yet: the failover starts after it. */
  private lostFrom: Connection | undefined;
  /** The tracker at this index closed our idle connection: the next connection goes back to it, quietly. */
  private idleFrom: number | undefined;
  /** The last failover ran out of time: the next request tries each tracker once, without the window. */
  private gaveUp = false;
  /** Tail of the request queue; never rejects. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Aborted by `close()`: ends reconnect attempts in progress. */
  private abort = new AbortController();
  private token: string | undefined;
  private readonly idPrefix = `c${randomBytes(4).toString('hex')}`;
  private lastId = 0;
  private readonly resumedListeners = new Set<TrackerListener>();
  private readonly sessionLostListeners = new Set<TrackerListener>();
  private readonly timings: TrackerTimings;
  /** Requests queued and not started yet: a background reconnect that fails leaves its error to them. */
  private waiting = 0;
  /** Per position in the tracker info file: why the last connection attempt failed. */
  private readonly failures = new Map<number, string>();
  /**
   * Per position in the tracker info file: why its TLS failed (a certificate other than the one expected, no
   * STARTTLS), kept until it connects again, so an error about finding no tracker still says why.
   */
  private readonly tlsTrouble = new Map<number, string>();
  /** Per position: the fingerprint whose mismatch the user was already told about (told once per streak). */
  private readonly mismatchTold = new Map<number, string>();

  constructor(
    private readonly config: ClientConfigService,
    @Inject(OUTPUT) private readonly out: OutputPort,
    private readonly identity: ClientIdentityService,
    @Optional() @Inject(TRACKER_TIMINGS) timings?: Partial<TrackerTimings>,
  ) {
    this.timings = { ...DEFAULT_TRACKER_TIMINGS, ...timings };
  }

  /** The tracker currently connected to, if any. */
  get tracker(): HostPort | undefined {
    return this.conn?.tracker;
  }

  /** How the connection to the tracker in use is protected; undefined when not connected. */
  get security(): TrackerLinkSecurity | undefined {
    if (!this.conn) return undefined;
    const { fingerprint } = this.conn;
    return fingerprint === undefined ? { kind: 'plain' } : { kind: 'tls', fingerprint };
  }

  /** Every tracker of the tracker info file in file order: which one is in use, which failed when last tried. */
  trackerStates(): TrackerState[] {
    return this.config.get().trackers.map((tracker, index) => {
      const lastFailure = this.failures.get(index);
      return { tracker, inUse: this.conn?.index === index, ...(lastFailure === undefined ? {} : { lastFailure }) };
    });
  }

  /** The session token `resume` sends after a failover, if a login handed one over. */
  get sessionToken(): string | undefined {
    return this.token;
  }

  /** Set after a successful `login` (from its `session_token:` line); undefined after `logout`. */
  setSessionToken(token: string | undefined): void {
    this.token = token;
  }

  /** After a failover, `resume` took the session up on the new tracker. Returns an unsubscribe function. */
  onResumed(listener: TrackerListener): () => void {
    this.resumedListeners.add(listener);
    return () => this.resumedListeners.delete(listener);
  }

  /** After a failover, the new tracker did not know the session; the token is already forgotten. */
  onSessionLost(listener: TrackerListener): () => void {
    this.sessionLostListeners.add(listener);
    return () => this.sessionLostListeners.delete(listener);
  }

  /** Connects unless connected (first tracker in file order that answers); resolves with that tracker. */
  async connect(): Promise<HostPort> {
    return (await this.ensureConnected()).tracker;
  }

  /**
   * Sends one request line (without its newline and without an id), plus any
   * continuation lines the command announced (`upload_file ... @N`), and
   * resolves with the reply, failing over to another tracker if needed.
   */
  request(line: string, continuation: readonly string[] = []): Promise<Reply> {
    if ([line, ...continuation].some((l) => /[\r\n]/.test(l))) {
      return Promise.reject(new TrackerProtocolError('a request line must not contain a newline'));
    }
    const first = `#${this.nextId()} ${line}`;
    const timeoutMs = isLarge(line, continuation) ? this.timings.largeReplyTimeoutMs : this.timings.replyTimeoutMs;
    this.waiting++;
    return this.enqueue(() => {
      this.waiting--;
      return this.exchange(first, continuation, timeoutMs);
    });
  }

  /** Closes the connection; a request in flight fails and reconnecting stops. A later request connects again. */
  close(): void {
    this.abort.abort();
    this.abort = new AbortController();
    this.lostFrom = undefined;
    this.gaveUp = false;
    if (this.conn) this.drop(this.conn, new Broken('closed', new TrackerConnectionLostError(this.conn.tracker)));
  }

  onModuleDestroy(): void {
    this.close();
  }

  private nextId(): string {
    return `${this.idPrefix}-${++this.lastId}`;
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Sends the request until a reply comes, at most once per tracker (plus one), failing over in between. */
  private async exchange(first: string, continuation: readonly string[], timeoutMs: number): Promise<Reply> {
    const maxSends = Math.max(2, this.config.get().trackers.length + 1);
    for (let sends = 1; ; sends++) {
      const conn = await this.ensureConnected();
      try {
        return await this.roundTrip(conn, first, continuation, timeoutMs);
      } catch (err) {
        if (!(err instanceof Broken)) throw err;
        if ((err.kind !== 'gone' && err.kind !== 'idle') || sends >= maxSends) throw err.error;
        // The tracker went away with the request in flight: the next pass fails over and sends it again.
      }
    }
  }

  private ensureConnected(): Promise<Connection> {
    if (this.conn) return Promise.resolve(this.conn);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /**
   * Connects to the first tracker that answers, in file order, or after a
   * failure starting with the one after the tracker that went away. A failover
   * keeps trying for the failover window; a first connection tries each once.
   */
  private async open(): Promise<Connection> {
    const signal = this.abort.signal;
    const from = this.lostFrom;
    const { trackers } = this.config.get();
    const start = from === undefined ? (this.idleFrom ?? 0) : (from.index + 1) % trackers.length;
    const order = trackers.map((_, i) => (start + i) % trackers.length);
    const deadline = from === undefined || this.gaveUp ? 0 : Date.now() + this.timings.failoverWindowMs;
    let told = false;
    for (;;) {
      for (const index of order) {
        const conn = await this.openOne(index, signal);
        if (!conn) continue;
        const session = await this.resume(conn);
        if (session === 'broken' || conn.dead) continue;
        if (signal.aborted) {
          this.drop(conn, new Broken('closed', new TrackerConnectionLostError(conn.tracker)));
          break;
        }
        this.conn = conn;
        this.lostFrom = undefined;
        this.idleFrom = undefined;
        this.gaveUp = false;
        this.announce(from, conn, session, told);
        return conn;
      }
      if (signal.aborted) throw new TrackerConnectionLostError(from?.tracker ?? trackers[0], 'closed');
      const left = deadline - Date.now();
      if (left <= 0) break;
      if (from !== undefined && !told) {
        // no tracker answered at once: say so once, rather than stay silent for the whole window
        told = true;
        const seconds = Math.round(this.timings.failoverWindowMs / 100) / 10;
        this.out.line(`tracker ${formatHostPort(from.tracker)} went away; trying the others for up to ${seconds} s`);
      }
      await pause(Math.min(this.timings.retryPauseMs, left), signal);
    }
    if (from === undefined) throw new TrackerUnreachableError(trackers, this.whyNone());
    this.gaveUp = true;
    throw new TrackerFailoverError(trackers, this.whyNone());
  }

  /** What made the trackers unusable beyond being down: TLS trouble in file order, then the last refusal. */
  private whyNone(): string | undefined {
    const reasons = [...this.tlsTrouble].sort(([a], [b]) => a - b).map(([, why]) => why);
    if (this.lastRefusal !== undefined) reasons.push(this.lastRefusal);
    return reasons.length > 0 ? reasons.join('; ') : undefined;
  }

  private async openOne(index: number, signal: AbortSignal): Promise<Connection | undefined> {
    const { trackers, connectTimeoutMs, noTls } = this.config.get();
    const tracker = trackers[index];
    let fingerprint: string | undefined;
    try {
      // every tracker connection speaks the extended form: framed replies, request ids, continuation lines; and,
      // unless --no-tls, inside TLS with the tracker's certificate checked before the HELLO
      const line = await LineConnection.open(tracker, {
        timeoutMs: connectTimeoutMs,
        signal,
        maxReplyLineBytes: MAX_REPLY_LINE_BYTES,
        keepAliveMs: 30_000,
        hello: true,
        ...(noTls ? {} : { tls: this.tlsFor(index, (checked) => (fingerprint = checked)) }),
      });
      this.lastRefusal = undefined;
      this.failures.delete(index);
      this.tlsTrouble.delete(index);
      this.mismatchTold.delete(index);
      return this.attach(index, tracker, line, fingerprint);
    } catch (err) {
      const name = formatHostPort(tracker);
      const cause = err instanceof Error ? err.cause : undefined;
      if (err instanceof LineConnectError && err.refusal) {
        // a refusal (TOO_MANY_CONNECTIONS) answers STARTTLS or the HELLO: passed over like a tracker that is down
        this.lastRefusal = `${name} refused: ${err.refusal.message}`;
        this.failures.set(index, `refused: ${err.refusal.message}`);
      } else if (cause instanceof FingerprintMismatchError) {
        // loud, once per streak: nothing was sent to it, and the next tracker is tried
        if (this.mismatchTold.get(index) !== cause.actual) {
          this.mismatchTold.set(index, cause.actual);
          this.out.line(cause.message.startsWith('WARNING') ? cause.message : `WARNING: ${cause.message}`);
        }
        const why = `${name} presented certificate ${cause.actual}, not the ${cause.expected} ${
          cause.source === 'pinned' ? 'pinned for it' : 'trusted for it before'
        }`;
        this.tlsTrouble.set(index, why);
        this.failures.set(index, `certificate mismatch: ${cause.actual}, expected ${cause.expected}`);
      } else if (cause instanceof StartTlsRefusedError) {
        const why = `${name} does not speak TLS (start the client with --no-tls to use it anyway)`;
        this.tlsTrouble.set(index, why);
        this.failures.set(index, 'does not speak TLS (start the client with --no-tls to use it anyway)');
      } else if (cause instanceof TlsHandshakeError) {
        this.tlsTrouble.set(index, `${name}: ${cause.message}`);
        this.failures.set(index, cause.message);
      } else {
        this.failures.set(index, failureText(err));
      }
      return undefined;
    }
  }

  /**
   * The TLS options for the tracker at `index`: our identity (the tracker records its fingerprint for our seeds)
   * and the check of its certificate against its pin in the tracker info file, else against known_trackers
   * (trusting, and saying so once, the first fingerprint seen). `checked` hears the fingerprint that passed.
   */
  private tlsFor(index: number, checked: (fingerprint: string) => void) {
    const { trackers, trackerPins, trackerInfoFile, dataDir } = this.config.get();
    const name = formatHostPort(trackers[index]);
    const known = new KnownTrackers(join(dataDir, KNOWN_TRACKERS_FILE));
    const verify = trackerVerifier(name, trackerPins?.[index], known, trackerInfoFile, (fingerprint) =>
      this.out.line(`trusting tracker ${name} on first use: ${fingerprint} (kept in ${known.file})`),
    );
    return {
      identity: this.identity.get(),
      verify: (fingerprint: string) => {
        verify(fingerprint);
        checked(fingerprint);
      },
    };
  }

  /** Takes the session up on a new connection, if there is one to take up. */
  private async resume(conn: Connection): Promise<SessionState> {
    const token = this.token;
    if (token === undefined) return 'none';
    let reply: Reply;
    try {
      reply = await this.roundTrip(
        conn,
        `#${this.nextId()} ${joinArgs(['resume', token])}`,
        [],
        this.timings.replyTimeoutMs,
      );
    } catch (err) {
      if (!(err instanceof Broken)) throw err;
      this.drop(conn, err);
      return 'broken';
    }
    if (reply.ok) return 'resumed';
    // SESSION_EXPIRED (idle or too old), UNKNOWN_SESSION (revoked, or unknown to this network),
    // or a tracker that cannot resume at all: the token is of no more use anywhere.
    if (this.token === token) this.token = undefined;
    return reply.code === ErrorCode.SessionExpired ? 'expired' : 'lost';
  }

  /** One notice line per failover, then the listeners. */
  private announce(from: Connection | undefined, conn: Connection, session: SessionState, told = false): void {
    if (from !== undefined) {
      const was = formatHostPort(from.tracker);
      const now = formatHostPort(conn.tracker);
      if (told) this.out.line(was === now ? `reconnected to tracker ${now}` : `now using tracker ${now}`);
      else
        this.out.line(
          was === now ? `tracker ${was} went away; reconnected` : `tracker ${was} went away; now using ${now}`,
        );
    }
    if (session === 'lost' || session === 'expired') {
      this.out.error(
        session === 'expired'
          ? 'your session has expired; log in again'
          : 'session lost on the new tracker; log in again',
      );
      notify(this.sessionLostListeners, conn.tracker);
    }
    if (session === 'resumed') notify(this.resumedListeners, conn.tracker);
  }

  /** Writes one request and waits for its reply; rejects with a `Broken` when the connection fails first. */
  private roundTrip(
    conn: Connection,
    first: string,
    continuation: readonly string[],
    timeoutMs: number,
  ): Promise<Reply> {
    if (conn.dead) return Promise.reject(new Broken('gone', new TrackerConnectionLostError(conn.tracker)));
    return new Promise<Reply>((resolve, reject) => {
      const pending: Pending = { timeoutMs, timer: undefined, unsent: 0, resolve, reject };
      conn.pending = pending;
      conn.line.request(first, continuation).then(
        (reply) => {
          if (conn.pending !== pending) return;
          if (!reply.ok && reply.code === ErrorCode.IdleTimeout) {
            // the tracker closed the connection as idle just as this request went out: it was not read
            this.drop(conn, new Broken('idle', new TrackerConnectionLostError(conn.tracker, reply.message)));
            return;
          }
          conn.pending = undefined;
          clearTimeout(pending.timer);
          resolve(reply.ok ? okReply(reply.message, reply.lines) : errReply(reply.code, reply.message));
        },
        () => undefined, // the connection ended: its close listener drops it and rejects `pending`
      );
      pending.unsent = conn.line.writableLength;
      this.arm(conn, pending);
    });
  }

  /** (Re)starts the reply inactivity timer; a request still being written out counts as activity. */
  private arm(conn: Connection, pending: Pending): void {
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      const unsent = conn.line.writableLength;
      if (unsent > 0 && unsent !== pending.unsent) {
        pending.unsent = unsent;
        this.arm(conn, pending);
        return;
      }
      const seconds = Math.round(pending.timeoutMs / 100) / 10;
      this.drop(conn, new Broken('gone', new TrackerConnectionLostError(conn.tracker, `no reply for ${seconds} s`)));
    }, pending.timeoutMs);
  }

  private attach(index: number, tracker: HostPort, line: LineConnection, fingerprint?: string): Connection {
    const conn: Connection = { index, tracker, line, fingerprint, pending: undefined, dead: false };
    line.onData(() => {
      if (conn.pending) this.arm(conn, conn.pending);
    });
    // The tracker closes connections that stay quiet too long, with one IDLE_TIMEOUT line.
    line.onNotice((reply) => {
      if (reply.ok || reply.code !== ErrorCode.IdleTimeout) return false;
      this.drop(conn, new Broken('idle', new TrackerConnectionLostError(tracker, reply.message)));
      return true;
    });
    // The tracker hung up or the network failed (gone), it sent something that is not a reply (bad), or `close()`
    // aborted the connection (closed).
    line.onClose((kind: LineConnectionEnd, error: Error) => {
      if (kind === 'bad') {
        const why = new TrackerProtocolError(`bad reply from tracker ${formatHostPort(tracker)}: ${error.message}`);
        this.drop(conn, new Broken('bad', why));
      } else {
        this.drop(conn, new Broken(kind, new TrackerConnectionLostError(tracker)));
      }
    });
    return conn;
  }

  /**
   * Ends a connection once. The request in flight, if any, fails with `why`.
   * Unless we closed it ourselves, the next request fails over; with a session
   * to keep and nothing in flight, that happens right away.
   */
  private drop(conn: Connection, why: Broken): void {
    if (conn.dead) return;
    conn.dead = true;
    const pending = conn.pending;
    conn.pending = undefined;
    conn.line.close();
    if (this.conn === conn) {
      this.conn = undefined;
      if (why.kind === 'idle') {
        this.idleFrom = conn.index;
        if (!pending && this.token !== undefined) this.reconnectSoon();
      } else if (why.kind !== 'closed') {
        this.lostFrom = conn;
        if (!pending && this.token !== undefined) this.reconnectSoon();
      }
    }
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(why);
    }
  }

  /** Replaces a connection that broke while idle, through the queue like a request. */
  private reconnectSoon(): void {
    const signal = this.abort.signal;
    this.enqueue(async () => {
      if (!signal.aborted && !this.conn) await this.ensureConnected();
    }).catch((err: unknown) => {
      // a request queued behind this reconnect fails the same way and reports it: one error line, not two
      if (!signal.aborted && this.waiting === 0) this.out.error(err instanceof Error ? err.message : String(err));
    });
  }
}

/** Requests whose request or reply can run to megabytes get the longer reply timeout. */
function isLarge(line: string, continuation: readonly string[]): boolean {
  return continuation.length > 0 || /^download_file(\s|$)/.test(line);
}

/** A connection failure in a few words: `connection refused`, `timed out`, else the error's message. */
function failureText(err: unknown): string {
  const message = err instanceof Error ? err.message.replace(/\s*\n\s*/g, ' ') : String(err);
  if (/ECONNREFUSED/.test(message)) return 'connection refused';
  if (/ETIMEDOUT|timed out/.test(message)) return 'timed out';
  if (/ECONNRESET/.test(message)) return 'connection reset';
  return message;
}

function notify(listeners: ReadonlySet<TrackerListener>, tracker: HostPort): void {
  for (const listener of listeners) {
    try {
      listener(tracker);
    } catch {
      // a listener's failure is its own business
    }
  }
}

/** Waits `ms`, or less if `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
