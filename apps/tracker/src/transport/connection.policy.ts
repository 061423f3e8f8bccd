import {
  errReply,
  ErrorCode,
  ErrReply,
  formOfFirstBytes,
  HELLO_START,
  ReplyForm,
  STARTTLS_START,
  STARTTLS_START_CRLF,
  SYNC_MARKER,
} from '@app/protocol';
import { TrackerLimits } from '../config/tracker.config';

/** The limits the transport enforces; the rest of `TrackerLimits` is the login's business. */
export type ConnectionLimits = Pick<
  TrackerLimits,
  | 'maxConnsPerIp'
  | 'maxConns'
  | 'idleTimeoutLoginMs'
  | 'idleTimeoutMs'
  | 'maxLineBytes'
  | 'maxBufferedBytes'
  | 'maxPendingBytes'
  | 'maxUploadLineBytes'
>;

/** What the policy needs to know of a connection: is someone logged in on it, or is it a tracker. */
export interface PeerStanding {
  readonly user: string | undefined;
  readonly trackerNumber: number | undefined;
}

/** A refusal the transport writes as is; `close`: then the connection is closed. */
export interface Refusal {
  readonly reply: ErrReply;
  readonly close: boolean;
}

/**
 * Who may hold what of the tracker: connections per remote address and in
 * all, idle time before and after login, bytes of continuation lines waiting
 * per connection and in all. The transport asks it at each step and does what
 * it says; nothing here touches a socket. Time comes from `now` so tests can
 * move it.
 */
export class ConnectionPolicy {
  private readonly perAddress = new Map<string, number>();
  private readonly open = new Set<ConnectionSlot>();
  private pendingBytes = 0;

  constructor(
    readonly limits: ConnectionLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Open connections, and bytes of continuation lines held by all of them. */
  get usage(): { connections: number; pendingBytes: number } {
    return { connections: this.open.size, pendingBytes: this.pendingBytes };
  }

  /** A new connection from `remoteAddress`: its slot, or the refusal to send before closing it. */
  admit(remoteAddress: string | undefined, standing: PeerStanding): ConnectionSlot | Refusal {
    const address = normalizeAddress(remoteAddress);
    if (this.open.size >= this.limits.maxConns) {
      return close(ErrorCode.TooManyConnections, `this tracker serves ${this.limits.maxConns} connections at most`);
    }
    const mine = this.perAddress.get(address) ?? 0;
    if (mine >= this.limits.maxConnsPerIp) {
      return close(ErrorCode.TooManyConnections, `at most ${this.limits.maxConnsPerIp} connections from ${address}`);
    }
    this.perAddress.set(address, mine + 1);
    const slot = new ConnectionSlot(this, address, standing, this.now());
    this.open.add(slot);
    return slot;
  }

  /**
   * Slots idle past their timeout: no complete line and no reply for
   * `idleTimeoutLoginMs` before login, `idleTimeoutMs` after, and none while
   * a request is being handled. Authenticated trackers never idle out.
   */
  idle(): ConnectionSlot[] {
    const now = this.now();
    const out: ConnectionSlot[] = [];
    for (const slot of this.open) {
      const limit = slot.idleLimitMs();
      if (limit > 0 && slot.busy === 0 && now - slot.lastActive >= limit) out.push(slot);
    }
    return out;
  }

  /** How often the transport should look for idle slots: often enough for the shortest timeout. */
  get sweepEveryMs(): number {
    const timeouts = [this.limits.idleTimeoutLoginMs, this.limits.idleTimeoutMs].filter((ms) => ms > 0);
    return timeouts.length === 0 ? 0 : Math.max(50, Math.min(1000, ...timeouts.map((ms) => ms / 4)));
  }

  /** @internal */
  takePending(bytes: number): boolean {
    if (this.pendingBytes + bytes > this.limits.maxPendingBytes) return false;
    this.pendingBytes += bytes;
    return true;
  }

  /** @internal */
  givePending(bytes: number): void {
    this.pendingBytes -= bytes;
  }

  /** @internal */
  leaveAddress(address: string): void {
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
  }

  /** @internal */
  release(slot: ConnectionSlot): void {
    this.open.delete(slot);
  }

  /** @internal */
  clock(): number {
    return this.now();
  }
}

/** One admitted connection's share of the limits; `release()` once it has closed. */
export class ConnectionSlot {
  lastActive: number;
  /** Requests being handled now: a connection waiting for its own answer is not idle. */
  busy = 0;
  private countedAt: string | undefined;
  private held = 0;
  private released = false;

  constructor(
    private readonly policy: ConnectionPolicy,
    readonly address: string,
    private readonly standing: PeerStanding,
    now: number,
  ) {
    this.lastActive = now;
    this.countedAt = address;
  }

  /** A complete line came in or a reply went out. */
  touch(): void {
    this.lastActive = this.policy.clock();
  }

  /** The idle time after which this connection is closed now (0: never). */
  idleLimitMs(): number {
    if (this.standing.trackerNumber !== undefined) return 0;
    const { idleTimeoutLoginMs, idleTimeoutMs } = this.policy.limits;
    return this.standing.user === undefined ? idleTimeoutLoginMs : idleTimeoutMs;
  }

  /** The refusal written before closing this connection for being idle. */
  idleRefusal(): Refusal {
    const seconds = Math.round(this.idleLimitMs() / 100) / 10;
    const phase = this.standing.user === undefined ? ' before login' : '';
    return close(ErrorCode.IdleTimeout, `closed after ${seconds} s without a request${phase}`);
  }

  /** Called once the peer proved it is a tracker of this network: it no longer counts against its address. */
  authenticated(): void {
    if (this.countedAt === undefined) return;
    this.policy.leaveAddress(this.countedAt);
    this.countedAt = undefined;
  }

  /** Longest line this connection may send. Trackers may send far longer ones (whole chunk lists). */
  maxLineBytes(trackerLineBytes: number): number {
    return this.standing.trackerNumber !== undefined ? trackerLineBytes : this.policy.limits.maxLineBytes;
  }

  /**
   * Bytes read ahead of the request being handled before the connection
   * stops being read: one line of `lineLimit` and a bit before login, at
   * least 1 MiB of pipelined requests after it (always more than one line,
   * or a long line could never complete).
   */
  readAheadBytes(lineLimit: number): number {
    const trusted = this.standing.user !== undefined || this.standing.trackerNumber !== undefined;
    return Math.max(trusted ? READ_AHEAD_BYTES : 0, lineLimit + 64 * 1024);
  }

  /**
   * A command announced continuation lines: undefined if they may be held, or
   * the refusal for the command (its lines are then read and thrown away).
   */
  mayContinue(): Refusal | undefined {
    if (this.standing.user !== undefined || this.standing.trackerNumber !== undefined) return undefined;
    return keep(ErrorCode.NotLoggedIn, 'you must log in first; the lines that follow this command are ignored');
  }

  /** Holds `bytes` more of a continuation line: undefined if it fits, else the refusal for the command. */
  hold(bytes: number): Refusal | undefined {
    const trusted = this.standing.trackerNumber !== undefined;
    if (!trusted && this.held + bytes > this.policy.limits.maxBufferedBytes) {
      return close(
        ErrorCode.RequestTooLarge,
        `a request may hold ${this.policy.limits.maxBufferedBytes} bytes at most`,
      );
    }
    if (!this.policy.takePending(bytes)) {
      return keep(ErrorCode.TryLater, 'the tracker is busy with other uploads; try again in 1 s');
    }
    this.held += bytes;
    return undefined;
  }

  /**
   * Holds `bytes` of a streamed `upload_file`'s digests against the global
   * budget only (they are a fraction of the line, which has its own cap).
   */
  holdDigests(bytes: number): Refusal | undefined {
    if (!this.policy.takePending(bytes)) {
      return keep(ErrorCode.TryLater, 'the tracker is busy with other uploads; try again in 1 s');
    }
    this.held += bytes;
    return undefined;
  }

  /** Longest `upload_file` line this connection may stream in (0: none, before login). */
  maxUploadLineBytes(): number {
    return this.standing.user !== undefined ? this.policy.limits.maxUploadLineBytes : 0;
  }

  /** The held continuation lines were handed on or thrown away. */
  dropHeld(): void {
    this.policy.givePending(this.held);
    this.held = 0;
  }

  /** The connection has closed: gives back everything it held. Safe to call twice. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.dropHeld();
    this.authenticated();
    this.policy.release(this);
  }
}

/** How far a logged-in connection (or a tracker) is read ahead of the request being handled. */
const READ_AHEAD_BYTES = 1024 * 1024;

/**
 * First bytes that mean the peer reads framed replies: the HELLO that selects
 * the extended form, a sync line (always answered framed), and `STARTTLS`
 * (only our peers send it; a refusal to it is one `ERR` line, in clear).
 */
const FRAMED_STARTS = [HELLO_START, Buffer.from(`${SYNC_MARKER} `, 'latin1'), STARTTLS_START, STARTTLS_START_CRLF];
/** Bytes of a refused connection read to learn its form: enough for the longest framed start. */
export const FORM_PROBE_BYTES = Math.max(...FRAMED_STARTS.map((b) => b.length));

/**
 * The form to refuse a connection in, from its first bytes: framed
 * (`extended`) when they begin with `HELLO ` or a sync line's marker, else
 * the seed form. Undefined while they could still be either, unless `final`
 * (nothing more will be read: the wait is over or the peer has ended).
 */
export function refusalForm(first: Buffer, final: boolean): ReplyForm | undefined {
  return formOfFirstBytes(first, FRAMED_STARTS, final);
}

/** `::ffff:1.2.3.4` is `1.2.3.4`: one host is one address however it reached us. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '?';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

const close = (code: ErrorCode, message: string): Refusal => ({ reply: errReply(code, message), close: true });
const keep = (code: ErrorCode, message: string): Refusal => ({ reply: errReply(code, message), close: false });
