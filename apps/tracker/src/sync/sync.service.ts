import {
  compareOps,
  decodeOpBody,
  encodeOpArgs,
  formatHostPort,
  OpBody,
  OpKind,
  OpMeta,
  SeederForm,
  StampedOp,
  StampedOpOf,
  VersionVector,
} from '@app/protocol';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Clock, CLOCK, systemClock } from '../common/clock';
import { currentRequestId } from '../common/request-context';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { UNIT_OF_WORK, UnitOfWork } from '../storage/unit-of-work';
import { OpLogStore } from './oplog.store';
import { DEFAULT_LINK_TIMINGS, PeerLinkTimings, PeerTrackerClient } from './peer-tracker.client';
import { CLUSTER_KEY, OPLOG_STORE } from './sync.tokens';

/** Applies one change to the stored state. Must be deterministic and do nothing when the change no longer fits. */
export type Applier<K extends OpKind = OpKind> = (op: StampedOpOf<K>) => void;

/**
 * The parts of the state an op of one kind reads or writes, as keys (`g:<group>`, `u:<user>`, `t:<token>`).
 * Two ops with no key in common commute: applied in either order they leave the same state.
 */
export type Footprint<K extends OpKind = OpKind> = (op: StampedOpOf<K>) => readonly string[];

/** A change made on this tracker: one of the kinds of ops.ts, with its actor; time and request id as commit says. */
export type Change = OpBody & Pick<OpMeta, 'actor'> & Partial<Pick<OpMeta, 'time' | 'requestId'>>;

/** Late changes are applied in place when at most this many applied ones sort after them; past that, a replay. */
const MAX_REORDER_DISTANCE = 64;

/** A part of the replicated state: it can be emptied (before a replay) and described (for the digest). */
export interface StateParticipant {
  readonly name: string;
  reset(): void;
  /** Canonical lines describing the state, independent of the order it was built in. */
  describe(): string[];
  /** Called after a replay rebuilt the state, to bring soft state in line with it. */
  afterReplay?(): void;
}

/** Who seeds what through this tracker's own sessions; soft state, pushed to peers, never logged. */
export interface PresenceEntry {
  readonly userId: string;
  readonly address: string;
  readonly groupId: string;
  readonly fileName: string;
  readonly filePath: string;
  /** How the seeder speaks: the form of the connection its session registered the file over. */
  readonly form: SeederForm;
}
export type PresenceChange =
  | { readonly on: true; readonly entry: PresenceEntry }
  | { readonly on: false; readonly entry: Omit<PresenceEntry, 'address' | 'filePath' | 'form'> };

export interface SyncOptions {
  /** How long a client's reply may wait for peers to acknowledge its change. */
  readonly replicationWaitMs: number;
  /** How long start-up waits for reachable peers to hand over what this tracker missed. */
  readonly catchUpWaitMs: number;
  /** Connect and handshake deadlines, and the backoff between tries, of the links to other trackers. */
  readonly link: PeerLinkTimings;
}

export const DEFAULT_SYNC_OPTIONS: SyncOptions = {
  replicationWaitMs: 2000,
  catchUpWaitMs: 4000,
  link: DEFAULT_LINK_TIMINGS,
};

/**
 * Tracker replication. Every change is an op stamped (origin tracker, seq,
 * Lamport clock), stored in the op log in the same transaction that applies
 * it, and pushed to every other tracker, which stores and applies it exactly
 * once. All trackers apply ops in one total order (Lamport clock, origin,
 * seq); an op that arrives late and sorts before what is applied already makes
 * the tracker replay its whole log in that order, so every tracker that holds
 * the same ops holds the same state, whatever order they arrived in.
 */
@Injectable()
export class SyncService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(SyncService.name);
  private readonly appliers = new Map<OpKind, (op: StampedOp) => void>();
  private readonly footprints = new Map<OpKind, (op: StampedOp) => readonly string[]>();
  private readonly participants: StateParticipant[] = [];
  private readonly presenceSources: (() => PresenceEntry[])[] = [];
  private readonly remotePresenceListeners: ((tracker: number, change: PresenceChange | 'reset') => void)[] = [];
  private readonly peers: PeerTrackerClient[] = [];
  private readonly waiters = new Set<() => void>();
  private lamport = 0;
  private mySeq = 0;
  private lastApplied: StampedOp | undefined;
  private replayingLog = false;
  private readyResolve!: () => void;
  /** Resolves once start-up catch-up is done (or gave up on unreachable peers). */
  readonly ready: Promise<void> = new Promise((r) => (this.readyResolve = r));
  private options: SyncOptions = DEFAULT_SYNC_OPTIONS;
  /** Per peer tracker whose link is down: since when (soft state; start-up counts as a drop). */
  private readonly linkDownSince = new Map<number, number>();
  private linkSampler: NodeJS.Timeout | undefined;

  constructor(
    @Inject(OPLOG_STORE) private readonly log: OpLogStore,
    @Inject(UNIT_OF_WORK) private readonly work: UnitOfWork,
    @Inject(TRACKER_CONFIG) private readonly config: TrackerConfig,
    @Inject(CLUSTER_KEY) private readonly key: Buffer,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
  ) {
    this.lamport = log.maxLamport();
    this.mySeq = log.versionVector().get(config.trackerNumber) ?? 0;
    this.lastApplied = log.last();
  }

  /** True while the log is being replayed: appliers re-apply history and must leave soft state alone. */
  get replaying(): boolean {
    return this.replayingLog;
  }

  get trackerNumber(): number {
    return this.config.trackerNumber;
  }

  configure(options: Partial<SyncOptions>): void {
    this.options = { ...this.options, ...options };
  }

  /**
   * `footprint`: every key of the state the applier reads or writes. A change of a kind without one makes every
   * late change that sorts before it replay the log; with one, a late change that shares no key with the
   * changes applied after it is applied in place.
   */
  register<K extends OpKind>(kind: K, applier: Applier<K>, footprint?: Footprint<K>): void {
    if (this.appliers.has(kind)) throw new Error(`an applier for ${kind} is registered twice`);
    // the maps are keyed by kind: an op is only ever handed to the functions registered for its own kind
    this.appliers.set(kind, applier as (op: StampedOp) => void);
    if (footprint) this.footprints.set(kind, footprint as (op: StampedOp) => readonly string[]);
  }

  participate(participant: StateParticipant): void {
    this.participants.push(participant);
  }

  /**
   * Records and applies a change made on this tracker. Runs synchronously, in
   * one unit of work. The op carries the id of the request being served (what
   * makes a retried request "already applied"), unless `requestId` says
   * otherwise: '' for bookkeeping that is not the request's own change. A
   * change its kind's codec would refuse (so every peer would) is refused here
   * with a ProtocolError, before anything is written.
   */
  commit<C extends Change>(change: C): StampedOpOf<C['kind']> {
    const op = {
      ...change,
      time: change.time ?? this.clock.now(),
      requestId: change.requestId ?? currentRequestId(),
      origin: this.config.trackerNumber,
      seq: this.mySeq + 1,
      lamport: this.lamport + 1,
    } as StampedOp as StampedOpOf<C['kind']>;
    decodeOpBody(op.kind, encodeOpArgs(op)); // throws for a change no peer would take
    this.work.run(() => {
      this.log.append(op);
      this.apply(op);
    });
    this.mySeq = op.seq;
    this.lamport = op.lamport;
    this.lastApplied = op;
    this.wakePeers();
    return op;
  }

  /** A change from another tracker: stored and applied once; 'duplicate' when it was here already. */
  receive(op: StampedOp): 'applied' | 'replayed' | 'duplicate' {
    if (op.origin === this.config.trackerNumber && op.seq <= this.mySeq) return 'duplicate';
    const outcome = this.work.run(() => {
      if (!this.log.append(op)) return 'duplicate' as const;
      if (!this.lastApplied || compareOps(op, this.lastApplied) > 0 || this.commutesWithLater(op)) {
        this.apply(op);
        return 'applied' as const;
      }
      this.replay();
      return 'replayed' as const;
    });
    if (outcome === 'duplicate') return outcome;
    this.lamport = Math.max(this.lamport, op.lamport);
    if (op.origin === this.config.trackerNumber) this.mySeq = Math.max(this.mySeq, op.seq);
    if (!this.lastApplied || compareOps(op, this.lastApplied) > 0) this.lastApplied = op;
    if (outcome === 'replayed') this.logger.log(`replayed the log: ${op.kind} from tracker ${op.origin} came in late`);
    this.wakePeers();
    return outcome;
  }

  /**
   * Changes fetched from another tracker, stored and applied in one
   * transaction: a catch-up of thousands of changes syncs to disk once per
   * batch, not once per change. All or nothing: when one fails, none is kept.
   */
  receiveAll(ops: readonly StampedOp[]): void {
    const before = { lamport: this.lamport, mySeq: this.mySeq, lastApplied: this.lastApplied };
    try {
      this.work.run(() => {
        for (const op of ops) this.receive(op);
      });
    } catch (err) {
      ({ lamport: this.lamport, mySeq: this.mySeq, lastApplied: this.lastApplied } = before);
      throw err;
    }
  }

  /** Whether `userId` already made a change with this request id (ids are scoped to the user who sent them). */
  hasRequest(requestId: string, userId: string): boolean {
    return requestId !== '' && userId !== '' && this.log.hasRequest(requestId, userId);
  }

  /**
   * Since when the link to tracker `n` has been down (start-up counts as a
   * drop), or undefined while it is up. This tracker itself is never down.
   */
  peerDownSince(n: number): number | undefined {
    if (n === this.config.trackerNumber) return undefined;
    const peer = this.peers.find((p) => p.number === n);
    if (peer?.connected) {
      this.linkDownSince.delete(n);
      return undefined;
    }
    if (!this.linkDownSince.has(n)) this.linkDownSince.set(n, this.clock.now());
    return this.linkDownSince.get(n);
  }

  versionVector(): Map<number, number> {
    return this.log.versionVector();
  }

  opsAfter(vv: VersionVector, limit: number): StampedOp[] {
    return this.log.after(vv, limit);
  }

  /** SHA-1 of the replicated state; equal on two trackers exactly when they hold the same state. */
  digest(): string {
    const hash = createHash('sha1');
    for (const p of this.participants) for (const line of p.describe()) hash.update(`${p.name} ${line}\n`);
    return hash.digest('hex');
  }

  /** Waits until every connected peer holds this tracker's changes so far, or the wait runs out. */
  async flush(): Promise<void> {
    const target = this.mySeq;
    const pending = () => this.peers.filter((p) => p.connected && p.ackedSeq(this.config.trackerNumber) < target);
    if (target === 0 || pending().length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.options.replicationWaitMs);
      const check = () => {
        if (pending().length === 0) done();
      };
      function done() {
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      }
      const waiters = this.waiters;
      waiters.add(check);
    });
  }

  /** Tracker `n` proved the key on a link it dialed: it is up, so this tracker's own link to it need not wait. */
  peerDialedIn(n: number): void {
    this.peers.find((p) => p.number === n)?.retryNow();
  }

  /** A peer acknowledged changes, or its link went up or down. */
  peerProgress(): void {
    for (const peer of this.peers) this.peerDownSince(peer.number);
    for (const check of [...this.waiters]) check();
  }

  // presence: soft state about which sessions seed what, exchanged with peers

  addPresenceSource(source: () => PresenceEntry[]): void {
    this.presenceSources.push(source);
  }

  localPresence(): PresenceEntry[] {
    return this.presenceSources.flatMap((s) => s());
  }

  presenceChanged(change: PresenceChange): void {
    for (const peer of this.peers) peer.pushPresence(change);
  }

  onRemotePresence(listener: (tracker: number, change: PresenceChange | 'reset') => void): void {
    this.remotePresenceListeners.push(listener);
  }

  remotePresence(tracker: number, change: PresenceChange | 'reset'): void {
    for (const l of this.remotePresenceListeners) l(tracker, change);
  }

  onApplicationBootstrap(): void {
    const { trackers, trackerNumber, peerAddresses } = this.config;
    trackers.forEach((address, i) => {
      const n = i + 1;
      if (n === trackerNumber) return;
      this.peerDownSince(n);
      const target = peerAddresses.get(n) ?? address;
      this.peers.push(new PeerTrackerClient(n, target, this, this.key, this.logger, this.options.link));
    });
    if (this.peers.length === 0) {
      this.readyResolve();
      return;
    }
    // a link that came up is noticed here (a drop is noticed at once, through peerProgress)
    this.linkSampler = setInterval(() => this.peers.forEach((p) => this.peerDownSince(p.number)), 500).unref();
    const caughtUp = this.peers.map((p) => p.start());
    const timer = setTimeout(() => {
      this.logger.warn(`catch-up took over ${this.options.catchUpWaitMs} ms; serving clients with what is here`);
      this.readyResolve();
    }, this.options.catchUpWaitMs);
    void Promise.all(caughtUp).then(() => {
      clearTimeout(timer);
      this.readyResolve();
    });
    this.logger.log(
      `syncing with ${this.peers.map((p) => `tracker ${p.number} (${formatHostPort(p.address)})`).join(', ')}`,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.linkSampler);
    await Promise.all(this.peers.map((p) => p.stop()));
  }

  private wakePeers(): void {
    for (const peer of this.peers) peer.wake();
  }

  private apply(op: StampedOp): void {
    const applier = this.appliers.get(op.kind);
    if (!applier) {
      this.logger.warn(`no applier for ${op.kind}; change ignored`);
      return;
    }
    applier(op);
  }

  /**
   * Whether `op` (stored, sorting before what is applied) touches nothing the changes applied after it touched:
   * then applying it now leaves the state a replay would build, without re-applying the whole log.
   */
  private commutesWithLater(op: StampedOp): boolean {
    const mine = this.footprints.get(op.kind)?.(op);
    if (!mine) return false;
    const later = this.log.following(op, MAX_REORDER_DISTANCE + 1);
    if (later.length > MAX_REORDER_DISTANCE) return false;
    const keys = new Set(mine);
    return later.every((other) => {
      const theirs = this.footprints.get(other.kind)?.(other);
      return theirs !== undefined && theirs.every((key) => !keys.has(key));
    });
  }

  /** Rebuilds the whole state from the log, in the total order. Runs inside the caller's transaction. */
  private replay(): void {
    this.replayingLog = true;
    try {
      for (const p of this.participants) p.reset();
      for (const op of this.log.all()) this.apply(op);
    } finally {
      this.replayingLog = false;
    }
    for (const p of this.participants) p.afterReplay?.();
  }
}
