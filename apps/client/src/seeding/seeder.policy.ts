/*
 * Who may hold a connection to the chunk server, and for how long. The chunk
 * server frames, answers and writes; this class decides admission and the
 * deadlines, and tells the server when a connection has to go:
 *
 * - at most `maxConnections` connections at once, and at most
 *   `maxConnectionsPerAddress` from one remote address (one more:
 *   `ERR TOO_MANY_CONNECTIONS`), so no single address takes every slot; when
 *   every slot is taken, a newcomer takes the slot of the oldest connection
 *   that has not been served yet (which gets `ERR BUSY`), and is itself
 *   turned away with `ERR BUSY` only when every connection has been served;
 * - a new connection has `requestTimeoutMs` to present a request that gets
 *   served (a chunk sent back); error answers do not count;
 * - a request line, once started, must be complete within `lineTimeoutMs`
 *   (a peer trickling a byte at a time holds no slot for long);
 * - a connection that was served and then sends and reads nothing for
 *   `idleTimeoutMs` is closed.
 * Past a deadline the peer gets `ERR IDLE_TIMEOUT <why>` and is closed. While
 * our side is working on a request (reading the disk, waiting for the upload
 * cap) no deadline runs: that time is not the peer's doing.
 */
import { errReply, ErrorCode, ErrReply } from '@app/protocol';

export interface SeederLimits {
  /** Connections served at once over every address. */
  readonly maxConnections: number;
  /** Connections served at once from one remote address. */
  readonly maxConnectionsPerAddress: number;
  /** A new connection must have a request served within this (0: no deadline). */
  readonly requestTimeoutMs: number;
  /** A started request line must be complete within this (0: no deadline). */
  readonly lineTimeoutMs: number;
  /** A connection that sent and read nothing for this long is closed (0: never). */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_SEEDER_LIMITS: SeederLimits = {
  maxConnections: 512,
  maxConnectionsPerAddress: 8,
  requestTimeoutMs: 5_000,
  lineTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
};

/** Time and timers, swapped for a manual clock in tests. */
export interface PolicyClock {
  now(): number;
  /** Calls `fn` once after `ms`; returns the function that cancels it. The timer must not keep the process alive. */
  schedule(fn: () => void, ms: number): () => void;
}

export const systemClock: PolicyClock = {
  now: () => Date.now(),
  schedule(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** What the policy needs of a connection it watches. */
export interface WatchedConnection {
  /** Any number that grows while bytes go out to the peer (e.g. bytes handed to the kernel). */
  sentBytes(): number;
  /** A deadline passed: send `reply` if possible and close. Called at most once. */
  expire(reply: ErrReply): void;
}

export type Admission =
  { readonly ok: true; readonly watch: ConnectionWatch } | { readonly ok: false; readonly reply: ErrReply };

/** `::ffff:1.2.3.4` (IPv4 on a dual-stack socket) counts as `1.2.3.4`. */
export function addressKey(remoteAddress: string | undefined): string {
  if (!remoteAddress) return '?';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}

const seconds = (ms: number): string => `${+(ms / 1000).toFixed(3)} s`;

export class SeederPolicy {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  /** Connections admitted, oldest first. */
  private readonly watches = new Set<ConnectionWatch>();

  constructor(
    readonly limits: SeederLimits = DEFAULT_SEEDER_LIMITS,
    private readonly clock: PolicyClock = systemClock,
  ) {}

  /** Connections admitted and not yet released. */
  get connectionCount(): number {
    return this.total;
  }

  /** Connections admitted from `remoteAddress` and not yet released. */
  connectionsFrom(remoteAddress: string | undefined): number {
    return this.perAddress.get(addressKey(remoteAddress)) ?? 0;
  }

  /**
   * Takes a slot for a new connection and starts its deadlines, or says why
   * not (the caller sends the reply and closes). Call `watch.release()` once
   * the connection is closed.
   */
  admit(remoteAddress: string | undefined, conn: WatchedConnection): Admission {
    const key = addressKey(remoteAddress);
    const { maxConnections, maxConnectionsPerAddress } = this.limits;
    const fromThere = this.perAddress.get(key) ?? 0;
    if (fromThere >= maxConnectionsPerAddress) {
      return {
        ok: false,
        reply: errReply(
          ErrorCode.TooManyConnections,
          `${fromThere} connections from ${key} already (at most ${maxConnectionsPerAddress}); try later`,
        ),
      };
    }
    if (this.total >= maxConnections && !this.makeRoom()) {
      return { ok: false, reply: errReply(ErrorCode.Busy, `serving ${this.total} connections already; try later`) };
    }
    this.total++;
    this.perAddress.set(key, fromThere + 1);
    const watch: ConnectionWatch = new ConnectionWatch(this.limits, this.clock, conn, () => {
      this.watches.delete(watch);
      this.total--;
      const left = (this.perAddress.get(key) ?? 1) - 1;
      if (left > 0) this.perAddress.set(key, left);
      else this.perAddress.delete(key);
    });
    this.watches.add(watch);
    return { ok: true, watch };
  }

  /** Frees the slot of the oldest connection not served yet and not being answered; false if there is none. */
  private makeRoom(): boolean {
    for (const watch of this.watches) {
      if (watch.evict(errReply(ErrorCode.Busy, 'every slot is taken; making room for a newer connection; try later'))) {
        return true;
      }
    }
    return false;
  }
}

/**
 * The deadlines of one admitted connection. The server reports what happens
 * (`received`, `during`); one timer, re-armed lazily, checks the
 * earliest deadline and expires the connection when it has passed.
 */
export class ConnectionWatch {
  private readonly acceptedAt: number;
  private lastActivity: number;
  private lastSent: number;
  /** When the request line now being received began; undefined between lines. */
  private lineSince: number | undefined;
  private isServed = false;
  /** Requests our side is working on now. */
  private working = 0;
  private cancelTimer: (() => void) | undefined;
  /** When the armed timer fires. */
  private timerAt = Infinity;
  private over = false;

  constructor(
    private readonly limits: SeederLimits,
    private readonly clock: PolicyClock,
    private readonly conn: WatchedConnection,
    private readonly onRelease: () => void,
  ) {
    this.acceptedAt = this.lastActivity = clock.now();
    this.lastSent = conn.sentBytes();
    this.arm();
  }

  /** A request was answered with a chunk: the connection has shown it is a downloader. */
  get served(): boolean {
    return this.isServed;
  }

  /** Bytes arrived from the peer. */
  received(bytes: Uint8Array): void {
    if (this.over || bytes.length === 0) return;
    const now = this.clock.now();
    this.lastActivity = now;
    if (bytes[bytes.length - 1] === 0x0a) {
      this.lineSince = undefined;
    } else if (this.lineSince === undefined || bytes.includes(0x0a)) {
      // the last line is incomplete and started in this read (after its newline)
      this.lineSince = now;
      this.arm();
    }
  }

  /**
   * Waits for our side's work on a request; no deadline of the peer's runs
   * meanwhile. `served` tells from the result whether the request was served
   * (answered with data): that is recorded before the deadlines are checked again.
   */
  async during<T>(work: Promise<T>, served?: (result: T) => boolean): Promise<T> {
    this.working++;
    try {
      const result = await work;
      if (served?.(result)) this.isServed = true;
      return result;
    } finally {
      this.working--;
      this.lastActivity = this.clock.now();
      if (this.working === 0) this.check();
    }
  }

  /**
   * Closes the connection with `reply` to make room for another, if it has
   * not been served and our side is not working on a request of it.
   */
  evict(reply: ErrReply): boolean {
    if (this.over || this.isServed || this.working > 0) return false;
    this.release();
    this.conn.expire(reply);
    return true;
  }

  /** The connection is closed: frees its slot and stops its timer. Safe to call more than once. */
  release(): void {
    if (this.over) return;
    this.over = true;
    this.disarm();
    this.onRelease();
  }

  /** The earliest deadline now running, with the reply for when it passes. */
  private nextDeadline(): { at: number; reply: ErrReply } | undefined {
    if (this.working > 0) return undefined;
    const { requestTimeoutMs, lineTimeoutMs, idleTimeoutMs } = this.limits;
    let next: { at: number; reply: ErrReply } | undefined;
    const consider = (at: number, why: string) => {
      if (!next || at < next.at) next = { at, reply: errReply(ErrorCode.IdleTimeout, why) };
    };
    if (!this.isServed && requestTimeoutMs > 0) {
      consider(this.acceptedAt + requestTimeoutMs, `no request served within ${seconds(requestTimeoutMs)}; closing`);
    }
    if (this.lineSince !== undefined && lineTimeoutMs > 0) {
      consider(this.lineSince + lineTimeoutMs, `request line not complete within ${seconds(lineTimeoutMs)}; closing`);
    }
    if (idleTimeoutMs > 0) {
      consider(this.lastActivity + idleTimeoutMs, `idle for ${seconds(idleTimeoutMs)}; closing`);
    }
    return next;
  }

  private check(): void {
    if (this.over) return;
    const now = this.clock.now();
    const sent = this.conn.sentBytes();
    if (sent !== this.lastSent) {
      // the peer is reading what we sent: that is activity too (seen at check time, so late by at most one period)
      this.lastSent = sent;
      this.lastActivity = Math.max(this.lastActivity, now);
    }
    const next = this.nextDeadline();
    if (next && next.at <= now) {
      this.release();
      this.conn.expire(next.reply);
      return;
    }
    this.arm();
  }

  /** Makes sure the timer fires no later than the earliest deadline. */
  private arm(): void {
    if (this.over) return;
    const next = this.nextDeadline();
    if (!next) return this.disarm();
    if (this.cancelTimer && this.timerAt <= next.at) return;
    this.disarm();
    this.timerAt = next.at;
    this.cancelTimer = this.clock.schedule(
      () => {
        this.cancelTimer = undefined;
        this.timerAt = Infinity;
        this.check();
      },
      Math.max(0, next.at - this.clock.now()),
    );
  }

  private disarm(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.timerAt = Infinity;
  }
}
