import { OpKind } from '@app/protocol';
import { Logger } from '@nestjs/common';
import { Clock } from '../common/clock';
import { NO_REQUEST } from '../common/request-context';
import { SyncService } from '../sync/sync.service';
import { SessionExpiredError } from './auth.errors';
import { SessionTokenRecord, UserStore } from './user.store';

/** How long a session token resumes (`--session-idle`, `--session-max-age`). */
export interface SessionLifetimePolicy {
  /** A token nobody holds stops resuming this long after it was last seen. */
  readonly idleMs: number;
  /** A token stops resuming this long after its `session_open`, held or not. */
  readonly maxAgeMs: number;
  /** An expired token is purged from the store this long after it expired (until then resume says SESSION_EXPIRED). */
  readonly purgeAfterMs: number;
}

export const DEFAULT_SESSION_LIFETIME: SessionLifetimePolicy = {
  idleMs: 60 * 60_000,
  maxAgeMs: 7 * 24 * 60 * 60_000,
  purgeAfterMs: 60 * 60_000,
};

const SWEEP_MS = 60_000;

/**
 * When session tokens stop resuming, the same on every tracker.
 *
 * The absolute age counts from the `session_open` change's time stamp. The
 * idle time runs only while no connection holds the session: who holds it is
 * replicated by one change per login (`session_open`), `resume`
 * (`session_resume`) and connection closed without logout (`session_seen`,
 * which releases it), never per request. A session held on another tracker
 * idles from the moment this tracker lost its link to that one (a tracker that
 * died cannot say when its client left); a tracker that starts releases what
 * it held before it stopped, as seen at its start.
 */
export class SessionLifetime {
  private readonly logger = new Logger(SessionLifetime.name);
  /** Tokens held by a connection of this tracker. */
  private readonly heldHere = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly users: UserStore,
    private readonly sync: SyncService,
    private readonly policy: SessionLifetimePolicy,
    private readonly clock: Clock,
  ) {}

  /** A `session_open` was applied: when it was made here (not replayed), this tracker's connection holds it. */
  opened(tokenHash: string, origin: number): void {
    if (origin === this.sync.trackerNumber && !this.sync.replaying) this.heldHere.add(tokenHash);
  }

  /** When the token stops (or stopped) resuming. */
  expiresAt(token: SessionTokenRecord): number {
    const absolute = token.createdAt + this.policy.maxAgeMs;
    if (this.heldHere.has(token.tokenHash)) return absolute;
    let idleFrom = token.seenAt;
    if (token.heldBy !== 0 && token.heldBy !== this.sync.trackerNumber) {
      const down = this.sync.peerDownSince(token.heldBy);
      if (down === undefined) return absolute; // held on a tracker this one is linked with
      idleFrom = Math.max(idleFrom, down);
    }
    return Math.min(absolute, idleFrom + this.policy.idleMs);
  }

  isExpired(token: SessionTokenRecord): boolean {
    return this.expiresAt(token) <= this.clock.now();
  }

  /** Takes the session up on a connection of this tracker; an expired token is forgotten here and refused. */
  take(tokenHash: string): void {
    const token = this.users.token(tokenHash);
    if (token && this.isExpired(token)) {
      this.users.removeToken(tokenHash);
      throw new SessionExpiredError();
    }
    this.sync.commit({ kind: OpKind.SessionResume, actor: token?.userId ?? '', tokenHash, requestId: NO_REQUEST });
    this.heldHere.add(tokenHash);
  }

  /** The connection holding the session closed without logout: the idle time starts now, on every tracker. */
  release(tokenHash: string): void {
    this.heldHere.delete(tokenHash);
    try {
      const token = this.users.token(tokenHash);
      if (token) this.sync.commit({ kind: OpKind.SessionSeen, actor: token.userId, tokenHash, requestId: NO_REQUEST });
    } catch (err) {
      // e.g. the database closed first at shutdown: the next start releases what this tracker held
      this.logger.warn(`could not record the end of a session: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The session was logged out (its token is revoked already). */
  closed(tokenHash: string): void {
    this.heldHere.delete(tokenHash);
  }

  /** Forgets tokens that expired over `purgeAfterMs` ago. Returns how many. */
  purge(): number {
    const cutoff = this.clock.now() - this.policy.purgeAfterMs;
    let purged = 0;
    for (const token of this.users.tokens()) {
      if (this.expiresAt(token) <= cutoff && this.users.removeToken(token.tokenHash)) purged++;
    }
    return purged;
  }

  /** At start-up: releases what this tracker held before it stopped (its connections are gone), then sweeps. */
  start(): void {
    for (const token of this.users.tokens()) {
      if (token.heldBy === this.sync.trackerNumber && !this.heldHere.has(token.tokenHash)) {
        this.sync.commit({
          kind: OpKind.SessionSeen,
          actor: token.userId,
          tokenHash: token.tokenHash,
          requestId: NO_REQUEST,
        });
      }
    }
    this.sweep();
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
  }

  private sweep(): void {
    try {
      const purged = this.purge();
      if (purged > 0) this.logger.log(`purged ${purged} expired session token${purged === 1 ? '' : 's'}`);
    } catch (err) {
      this.logger.error(`purging session tokens failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
