import {
  encodeOp,
  ErrorCode,
  formatHostPort,
  formatSnapshotHead,
  formatVersionVector,
  HostPort,
  joinArgs,
  parseSnapshotHead,
  parseSnapshotRow,
  parseVersionVector,
  decodeOp,
  SnapshotHead,
  Reply,
  SYNC_MARKER,
  SyncCmd,
} from '@app/protocol';
import { LineConnectError, LineConnection } from '@app/line-client';
import { FingerprintMismatchError, Identity, StartTlsRefusedError, TlsHandshakeError } from '@app/tls';
import { Logger } from '@nestjs/common';
import { MAX_SYNC_LINE_BYTES } from '../config/tracker.config';
import {
  checkSyncProof,
  LinkParties,
  newNonce,
  NONCE_PATTERN,
  syncProof,
  syncEkm,
  SyncLinkError,
  SyncLinkSecurity,
} from './sync-link.security';
import type { PresenceChange, SyncService } from './sync.service';

const BATCH = 256;
const FETCH_BATCH = 2000;

/** How a link to another tracker is opened, given up on and tried again. */
export interface PeerLinkTimings {
  readonly connectTimeoutMs: number;
  /** A peer that has not finished the handshake this long after the TCP connect is dropped. */
  readonly handshakeTimeoutMs: number;
  /** How long start-up waits for a connected peer to finish the handshake before serving clients anyway. */
  readonly startupHandshakeWaitMs: number;
  /** Wait before dialing again after a refused connect or a lost link; the first backoff step. */
  readonly retryMs: number;
  /** Backoff after failed handshakes doubles from `retryMs` up to this. */
  readonly maxRetryMs: number;
}

export const DEFAULT_LINK_TIMINGS: PeerLinkTimings = {
  connectTimeoutMs: 1500,
  handshakeTimeoutMs: 3000,
  startupHandshakeWaitMs: 1000,
  retryMs: 500,
  maxRetryMs: 30_000,
};

/** What the dialer presents and expects in the TLS under a link. */
export interface PeerLinkTls {
  /** This tracker's identity, presented to the listener (which checks it against its pin of this tracker). */
  readonly identity?: Identity;
  /** The listener's fingerprint pinned in tracker_info.txt; without one any certificate is taken. */
  readonly pin?: string;
}

const expectOk = (reply: Reply, what: string): readonly string[] => {
  if (!reply.ok) throw new Error(`${what}: ${reply.code} ${reply.message}`);
  return reply.lines;
};

/** The handshake did not complete: the peer answered wrongly, too late, or not as a key holder. */
class HandshakeError extends Error {}

/** Why opening a link failed at TLS (the peer took the connection), or undefined when nobody listened there. */
function tlsFailure(err: unknown): Error | undefined {
  // a limit of the peer's (answered in clear to STARTTLS): it is there, and said why
  if (err instanceof LineConnectError && err.refusal) return new HandshakeError(err.message);
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof FingerprintMismatchError || cause instanceof TlsHandshakeError) return cause;
  if (cause instanceof StartTlsRefusedError) {
    return new HandshakeError(cause.answer === '' ? cause.message : `${cause.message}: it speaks no sync over TLS`);
  }
  return undefined;
}

/**
 * The timers of one try at a link: the TCP connect must succeed within
 * `connectTimeoutMs`; from then on TLS and the handshake must be done within
 * `handshakeTimeoutMs`, and start-up waits `startupHandshakeWaitMs` at most.
 * A timer that fires while the connection is being opened aborts it (`signal`);
 * once opened, it closes the connection with the reason.
 */
class LinkAttempt {
  private readonly abort = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private conn: LineConnection | undefined;
  /** Set when the handshake deadline passed before the connection was open. */
  timedOut: HandshakeError | undefined;

  constructor(
    private readonly timings: PeerLinkTimings,
    private readonly startupWaitOver: () => void,
  ) {
    this.timers.push(setTimeout(() => this.abort.abort(), timings.connectTimeoutMs));
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The TCP connection is up: the connect timer stops, the handshake deadline starts. */
  connected(): void {
    this.clear();
    const late = new HandshakeError(`no handshake within ${this.timings.handshakeTimeoutMs} ms`);
    this.timers.push(
      setTimeout(this.startupWaitOver, this.timings.startupHandshakeWaitMs),
      setTimeout(() => {
        if (this.conn) return this.conn.close(late);
        this.timedOut = late;
        this.abort.abort();
      }, this.timings.handshakeTimeoutMs),
    );
  }

  opened(conn: LineConnection): void {
    this.conn = conn;
  }

  /** The handshake is over (done or failed): no timer fires any more. */
  end(): void {
    this.clear();
  }

  private clear(): void {
    this.timers.splice(0).forEach(clearTimeout);
  }
}

/**
 * This tracker's link to one other tracker: connects (again and again while it
 * is down), makes the peer prove it holds the network key and proves it in
 * turn, pulls what it missed, then pushes every change the other lacks, and
 * this tracker's presence, as they happen. Every line after the handshake
 * carries a MAC bound to the link (see sync-link.security.ts).
 */
export class PeerTrackerClient {
  private conn: LineConnection | undefined;
  /** True once the handshake is done on `conn`: only then does the link count as up. */
  private up = false;
  private peerVV = new Map<number, number>();
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private retryWakeUp: (() => void) | undefined;
  private failedHandshakes = 0;
  private presenceQueue: PresenceChange[] = [];
  private firstRound: Promise<void>;
  private firstRoundDone!: () => void;

  constructor(
    readonly number: number,
    readonly address: HostPort,
    private readonly sync: SyncService,
    private readonly key: Buffer,
    private readonly logger: Logger,
    private readonly tls: PeerLinkTls = {},
    private readonly timings: PeerLinkTimings = DEFAULT_LINK_TIMINGS,
  ) {
    this.firstRound = new Promise((r) => (this.firstRoundDone = r));
  }

  get connected(): boolean {
    return this.up && this.conn !== undefined && !this.conn.closed;
  }

  /** Whether the peer lacks changes this tracker holds only in its snapshot: nothing is pushed until it took one. */
  get awaitingSnapshot(): boolean {
    return this.sync.needsSnapshot(this.peerVV);
  }

  /** Highest seq of `origin` the peer is known to hold. */
  ackedSeq(origin: number): number {
    return this.peerVV.get(origin) ?? 0;
  }

  /** Starts the link; resolves after the first catch-up attempt, whether the peer answered or not. */
  start(): Promise<void> {
    void this.run();
    return this.firstRound;
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.conn?.close();
    this.wake();
    this.retryNow();
    return Promise.resolve();
  }

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  /** The peer just proved the key on a link it dialed: it is up, so dial it now instead of after the backoff. */
  retryNow(): void {
    this.failedHandshakes = 0;
    const w = this.retryWakeUp;
    this.retryWakeUp = undefined;
    w?.();
  }

  /**
   * What the peer holds now (its version vector), asked over the link; undefined while the link is down. The
   * answer also brings what this link knows of the peer up to date: changes it received from others (its own
   * included) are otherwise known only from the link's hello, and a compaction cut past that stale picture would
   * make the peer look as if it needed the snapshot, and writes would stop waiting for it.
   */
  async status(): Promise<Map<number, number> | undefined> {
    const conn = this.conn;
    if (!this.connected || !conn) return undefined;
    try {
      const reply = await conn.request(`${SYNC_MARKER} ${SyncCmd.Status}`);
      const held = parseVersionVector(expectOk(reply, 'status')[0] ?? '');
      if (this.conn === conn) {
        for (const [origin, seq] of held) this.peerVV.set(origin, Math.max(this.peerVV.get(origin) ?? 0, seq));
      }
      return held;
    } catch {
      return undefined;
    }
  }

  pushPresence(change: PresenceChange): void {
    if (!this.connected) return; // a fresh link sends the whole picture anyway
    this.presenceQueue.push(change);
    this.wake();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let delay = this.timings.retryMs;
      const attempt = new LinkAttempt(this.timings, () => this.firstRoundDone());
      let conn: LineConnection | undefined;
      try {
        conn = await LineConnection.open(this.address, {
          // the attempt's own timers decide (connect, then the handshake deadline); this one is a backstop
          timeoutMs: this.timings.connectTimeoutMs + this.timings.handshakeTimeoutMs + 1000,
          signal: attempt.signal,
          onConnect: () => attempt.connected(),
          keepAliveMs: 5000,
          // a catch-up reply carries ops, each as long as the longest op a tracker commits
          maxReplyLineBytes: MAX_SYNC_LINE_BYTES,
          tls: { identity: this.tls.identity, verify: (fingerprint) => this.verifyListener(fingerprint) },
        });
      } catch (err) {
        // nobody listens there (yet): try again soon, nothing was sent. A peer that took the connection but
        // failed TLS (or the certificate check, or took too long) failed the handshake: warn and back off.
        const failure = attempt.timedOut ?? tlsFailure(err);
        if (failure && !this.stopped) delay = this.handshakeFailed(failure);
      }
      if (conn && this.stopped) conn.close(); // stopped while it was being opened
      if (conn && !this.stopped) {
        this.conn = conn;
        attempt.opened(conn);
        conn.onClose(() => {
          this.sync.peerProgress();
          this.wake();
        });
        try {
          await this.handshake(conn, attempt);
          this.failedHandshakes = 0;
          this.sync.peerProgress();
          await this.fetchMissing(conn);
          this.firstRoundDone();
          // logged once caught up: the bench times catch-up by this line
          this.logger.log({
            message: `linked with tracker ${this.number} at ${formatHostPort(this.address)}`,
            peer: this.number,
            address: formatHostPort(this.address),
            link: 'up',
          });
          await this.pushLoop(conn);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          if (this.stopped) {
            // shutting down
          } else if (this.up) {
            this.logger.warn({
              message: `lost tracker ${this.number}: ${reason}`,
              peer: this.number,
              link: 'down',
              reason,
            });
          } else if (err instanceof HandshakeError) {
            delay = this.handshakeFailed(err);
          }
        } finally {
          conn.close();
          this.conn = undefined;
          this.up = false;
          this.sync.peerProgress();
        }
      }
      attempt.end();
      this.firstRoundDone();
      if (!this.stopped) await this.retrySleep(delay);
    }
  }

  /** Logs a failed handshake; returns the backoff before the next try. */
  private handshakeFailed(err: Error): number {
    this.failedHandshakes++;
    const delay = Math.min(this.timings.maxRetryMs, this.timings.retryMs * 2 ** (this.failedHandshakes - 1));
    const reason = err.message;
    this.logger.warn({
      message: `no link with tracker ${this.number} at ${formatHostPort(this.address)}: ${reason}; next try in ${delay} ms`,
      peer: this.number,
      address: formatHostPort(this.address),
      link: 'refused',
      reason,
      ...(err instanceof FingerprintMismatchError && { expected: err.expected, presented: err.actual }),
    });
    return delay;
  }

  /**
   * The listener's certificate, checked before anything is sent inside TLS: when tracker_info.txt pins this
   * tracker, only that certificate will do. Without a pin any certificate will: the proofs, bound to this TLS
   * session, show the peer holds the network key.
   */
  private verifyListener(fingerprint: string): void {
    const pin = this.tls.pin;
    if (pin === undefined || fingerprint === pin) return;
    const address = formatHostPort(this.address);
    throw new FingerprintMismatchError(
      `tracker ${this.number} at ${address} presented the certificate ${fingerprint}, not ${pin} that ` +
        `tracker_info.txt pins for it: nothing was sent to it (if tracker ${this.number} really has a new ` +
        `identity, pin its new fingerprint in tracker_info.txt)`,
      address,
      pin,
      fingerprint,
      'pinned',
    );
  }

  /**
   * Mutual challenge-response inside TLS, bound to the TLS session. The peer
   * proves the key over this tracker's nonce before this tracker sends
   * anything but its hello; only then does this tracker prove it, and only
   * then do version vectors and presence flow.
   */
  private async handshake(conn: LineConnection, attempt: LinkAttempt): Promise<void> {
    try {
      const tls = conn.tls;
      if (!tls) throw new HandshakeError('the link is not inside TLS');
      const me = this.sync.trackerNumber;
      const dialerNonce = newNonce();
      const hello = await conn.request(`${SYNC_MARKER} ${SyncCmd.Hello} ${me} ${dialerNonce}`);
      if (!hello.ok) throw new HandshakeError(`hello refused: ${hello.code} ${hello.message}`);
      const [listenerNonce = '', proof = ''] = hello.lines;
      if (hello.lines.length !== 2 || !NONCE_PATTERN.test(listenerNonce)) {
        throw new HandshakeError('the peer does not speak this handshake');
      }
      const parties: LinkParties = { dialer: me, listener: this.number, dialerNonce, listenerNonce, ekm: syncEkm(tls) };
      if (!checkSyncProof(this.key, 'listener', parties, proof)) {
        throw new HandshakeError('wrong proof: the peer does not hold the network key');
      }
      const authReply = conn.request(`${SYNC_MARKER} ${SyncCmd.Auth} ${syncProof(this.key, 'dialer', parties)}`);
      // the auth line goes out plain; its reply is the first sealed one (replies are read on later ticks)
      conn.secure(SyncLinkSecurity.create(this.key, 'dialer', parties));
      const auth = await authReply;
      if (!auth.ok) throw new HandshakeError(`auth refused: ${auth.code} ${auth.message}`);
      this.peerVV = parseVersionVector(auth.lines[0] ?? '-');
    } catch (err) {
      // the deadline or a reply that failed its MAC closed the connection: that is the reason
      const cause = conn.error ?? (err instanceof Error ? err : new Error(String(err)));
      if (cause instanceof HandshakeError) throw cause;
      if (cause instanceof SyncLinkError || !conn.closed) throw new HandshakeError(cause.message);
      throw cause; // the peer hung up: as if nobody listened there
    } finally {
      attempt.end();
    }
    this.presenceQueue = [];
    this.up = true;
    const present = this.sync.localPresence();
    await Promise.all([
      conn.request(`${SYNC_MARKER} ${SyncCmd.PresenceReset}`),
      ...present.map((e) => conn.request(presenceLine({ on: true, entry: e }))),
    ]);
  }

  /** Pulls every change this tracker lacks from the peer: its snapshot first when the peer compacted them. */
  private async fetchMissing(conn: LineConnection): Promise<void> {
    let snapshots = 0;
    for (;;) {
      const mine = formatVersionVector(this.sync.versionVector());
      const reply = await conn.request(`${SYNC_MARKER} ${SyncCmd.Fetch} ${mine} ${FETCH_BATCH}`);
      if (!reply.ok && reply.code === ErrorCode.SnapshotNeeded && snapshots++ < 3) {
        await this.fetchSnapshot(conn);
        continue;
      }
      const lines = expectOk(reply, 'fetch');
      this.sync.receiveAll(lines.map((line) => decodeOp(line)));
      if (lines.length < FETCH_BATCH) return;
    }
  }

  /**
   * Pulls the peer's snapshot a page at a time into the database (not into memory), then takes it in one
   * transaction. A row or head that does not parse, rows out of order, or a snapshot that changed under way
   * (the peer compacted again) leave nothing behind: the link drops and the next one starts over.
   */
  private async fetchSnapshot(conn: LineConnection): Promise<void> {
    let head: SnapshotHead | undefined;
    let after = 0;
    for (;;) {
      const [headLine = '', ...rows] = expectOk(
        await conn.request(`${SYNC_MARKER} ${SyncCmd.Snapshot} ${after}`),
        'snapshot',
      );
      const page = parseSnapshotHead(headLine);
      if (head && formatSnapshotHead(page) !== formatSnapshotHead(head)) {
        throw new Error('the snapshot changed while it was being fetched');
      }
      head = page;
      const entries = rows.map((line) => {
        const { n, part, row } = parseSnapshotRow(line);
        if (n !== ++after) throw new Error(`snapshot row ${n} came where row ${after} was due`);
        return { part, row };
      });
      if (after > head.rows || (entries.length === 0 && after < head.rows)) {
        throw new Error(`the snapshot has ${head.rows} rows, not ${after}`);
      }
      this.sync.stageSnapshot(entries, after === entries.length);
      if (after === head.rows) break;
    }
    this.sync.installSnapshot(head);
    this.logger.log(`took the snapshot of tracker ${this.number}: ${head.rows} rows`);
  }

  /** Pushes what the peer lacks, then waits to be woken by the next change. */
  private async pushLoop(conn: LineConnection): Promise<void> {
    while (!this.stopped && !conn.closed) {
      if (this.awaitingSnapshot) {
        // the peer lacks changes this tracker holds only in its snapshot: it takes the snapshot over its own
        // link; pushing later changes before would leave it a gap. Ask again what it holds, later.
        this.peerVV = (await this.status()) ?? this.peerVV;
        if (this.sync.needsSnapshot(this.peerVV)) await this.sleep(1000);
        continue;
      }
      const presence = this.presenceQueue.splice(0);
      const ops = this.sync.opsAfter(this.peerVV, BATCH);
      if (ops.length === 0 && presence.length === 0) {
        await this.sleep(1000);
        continue;
      }
      const replies = await Promise.all([
        ...presence.map((c) => conn.request(presenceLine(c))),
        ...ops.map((op) => conn.request(`${SYNC_MARKER} ${encodeOp(op)}`)),
      ]);
      replies.slice(presence.length).forEach((reply, i) => {
        const op = ops[i];
        expectOk(reply, `push ${op.kind} ${op.origin}/${op.seq}`);
        this.peerVV.set(op.origin, Math.max(this.peerVV.get(op.origin) ?? 0, op.seq));
      });
      this.sync.peerProgress();
    }
    if (conn.closed) throw new Error('connection closed');
  }

  /** Waits `ms`, or less when `retryNow` or `stop` is called; commits do not cut it short. */
  private retrySleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.retryWakeUp === done) this.retryWakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.retryWakeUp = done;
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}

/** The sync line that tells a peer of one presence change (6.6): a full seeder's, or a partial seeder's. */
export function presenceLine(change: PresenceChange): string {
  const e = change.entry;
  if (e.partial) {
    return change.on
      ? joinArgs([
          SYNC_MARKER,
          SyncCmd.PresencePartialSet,
          e.userId,
          change.entry.address,
          e.groupId,
          e.fileName,
          ...(change.entry.fingerprint ? [change.entry.fingerprint] : []),
        ])
      : joinArgs([SYNC_MARKER, SyncCmd.PresencePartialUnset, e.userId, e.groupId, e.fileName]);
  }
  return change.on
    ? joinArgs([
        SYNC_MARKER,
        SyncCmd.PresenceSet,
        e.userId,
        change.entry.address,
        e.groupId,
        e.fileName,
        change.entry.filePath,
        change.entry.form,
        ...(change.entry.fingerprint ? [change.entry.fingerprint] : []),
      ])
    : joinArgs([SYNC_MARKER, SyncCmd.PresenceUnset, e.userId, e.groupId, e.fileName]);
}
