import {
  encodeOp,
  formatHostPort,
  formatVersionVector,
  HostPort,
  joinArgs,
  parseVersionVector,
  decodeOp,
  Reply,
  SYNC_MARKER,
  SyncCmd,
} from '@app/protocol';
import { Logger } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import { LineClient } from './line.client';
import type { PresenceChange, SyncService } from './sync.service';

const CONNECT_TIMEOUT_MS = 1500;
const RETRY_MS = 500;
const BATCH = 256;
const FETCH_BATCH = 2000;

/** The proof a tracker sends for `sync_auth`: HMAC-SHA256 of the peer's challenge and its own number. */
export function syncProof(key: Buffer, nonce: string, trackerNumber: number): string {
  return createHmac('sha256', key).update(`${nonce}:${trackerNumber}`).digest('hex');
}

const expectOk = (reply: Reply, what: string): readonly string[] => {
  if (!reply.ok) throw new Error(`${what}: ${reply.code} ${reply.message}`);
  return reply.lines;
};

/**
 * This tracker's link to one other tracker: connects (again and again while it
 * is down), proves it holds the network key, pulls what it missed, then pushes
 * every change the other lacks, and this tracker's presence, as they happen.
 */
export class PeerTrackerClient {
  private conn: LineClient | undefined;
  private peerVV = new Map<number, number>();
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private presenceQueue: PresenceChange[] = [];
  private firstRound: Promise<void>;
  private firstRoundDone!: () => void;

  constructor(
    readonly number: number,
    readonly address: HostPort,
    private readonly sync: SyncService,
    private readonly key: Buffer,
    private readonly logger: Logger,
  ) {
    this.firstRound = new Promise((r) => (this.firstRoundDone = r));
  }

  get connected(): boolean {
    return this.conn !== undefined && !this.conn.closed;
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
    return Promise.resolve();
  }

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  pushPresence(change: PresenceChange): void {
    if (!this.connected) return; // a fresh link sends the whole picture anyway
    this.presenceQueue.push(change);
    this.wake();
  }

  private async run(): Promise<void> {
    let wasUp = false;
    while (!this.stopped) {
      try {
        const conn = await LineClient.open(this.address, CONNECT_TIMEOUT_MS);
        this.conn = conn;
        conn.onClose(() => {
          this.sync.peerProgress();
          this.wake();
        });
        await this.handshake(conn);
        await this.fetchMissing(conn);
        this.firstRoundDone();
        if (!wasUp) this.logger.log(`linked with tracker ${this.number} at ${formatHostPort(this.address)}`);
        wasUp = true;
        await this.pushLoop(conn);
      } catch (err) {
        this.firstRoundDone();
        if (wasUp && !this.stopped) {
          this.logger.warn(`lost tracker ${this.number}: ${err instanceof Error ? err.message : String(err)}`);
        }
        wasUp = false;
      } finally {
        this.conn?.close();
        this.conn = undefined;
        this.sync.peerProgress();
      }
      if (!this.stopped) await this.sleep(RETRY_MS);
    }
  }

  private async handshake(conn: LineClient): Promise<void> {
    const me = this.sync.trackerNumber;
    const [nonce] = expectOk(await conn.request(`${SYNC_MARKER} ${SyncCmd.Hello} ${me}`), 'hello');
    const lines = expectOk(
      await conn.request(`${SYNC_MARKER} ${SyncCmd.Auth} ${syncProof(this.key, nonce ?? '', me)}`),
      'auth',
    );
    this.peerVV = parseVersionVector(lines[0] ?? '-');
    this.presenceQueue = [];
    const present = this.sync.localPresence();
    await Promise.all([
      conn.request(`${SYNC_MARKER} ${SyncCmd.PresenceReset}`),
      ...present.map((e) => conn.request(presenceLine({ on: true, entry: e }))),
    ]);
  }

  /** Pulls every change this tracker lacks from the peer. */
  private async fetchMissing(conn: LineClient): Promise<void> {
    for (;;) {
      const mine = formatVersionVector(this.sync.versionVector());
      const lines = expectOk(await conn.request(`${SYNC_MARKER} ${SyncCmd.Fetch} ${mine} ${FETCH_BATCH}`), 'fetch');
      this.sync.receiveAll(lines.map((line) => decodeOp(line)));
      if (lines.length < FETCH_BATCH) return;
    }
  }

  /** Pushes what the peer lacks, then waits to be woken by the next change. */
  private async pushLoop(conn: LineClient): Promise<void> {
    while (!this.stopped && !conn.closed) {
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

function presenceLine(change: PresenceChange): string {
  const e = change.entry;
  return change.on
    ? joinArgs([
        SYNC_MARKER,
        SyncCmd.PresenceSet,
        e.userId,
        change.entry.address,
        e.groupId,
        e.fileName,
        change.entry.filePath,
      ])
    : joinArgs([SYNC_MARKER, SyncCmd.PresenceUnset, e.userId, e.groupId, e.fileName]);
}
