import { OpKind } from '@app/protocol';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { Clock, CLOCK, systemClock } from '../common/clock';
import { NO_REQUEST } from '../common/request-context';
import { DEFAULT_TRACKER_LIMITS, TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { SyncService } from '../sync/sync.service';
import { Session } from '../common/session';
import { assertValidId } from '../common/ids';
import {
  AlreadyLoggedInError,
  InvalidPasswordError,
  LoginFailedError,
  TryLaterError,
  UnknownSessionError,
  UserExistsError,
} from './auth.errors';
import { registerAuthAppliers } from './auth.appliers';
import { LoginThrottle } from './login-throttle';
import { PASSWORD_HASHER, USER_STORE } from './auth.tokens';
import { PasswordHasher } from './password.hasher';
import { DEFAULT_SESSION_LIFETIME, SessionLifetime } from './session-lifetime';
import { UserStore } from './user.store';

const MAX_PASSWORD = 128;

/** Called after the session of `userId` on connection `connectionId` has ended (logout or connection closed). */
export type SessionEndedListener = (userId: string, connectionId: number) => void;

/** Accounts and who is logged in where. A user has at most one live session. */
@Injectable()
export class AuthService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AuthService.name);
  private readonly lifetime: SessionLifetime;
  /** userId -> connection id of its live session. */
  private readonly sessions = new Map<string, number>();
  private readonly sessionEndedListeners: SessionEndedListener[] = [];
  /** A hash of a random password, checked against for unknown users so that they take as long as known ones. */
  private dummyHash: Promise<string> | undefined;

  constructor(
    @Inject(USER_STORE) private readonly users: UserStore,
    @Inject(PASSWORD_HASHER) private readonly hasher: PasswordHasher,
    private readonly sync: SyncService,
    @Optional() @Inject(TRACKER_CONFIG) config?: Pick<TrackerConfig, 'sessionIdleMs' | 'sessionMaxAgeMs'>,
    @Optional() @Inject(CLOCK) clock: Clock = systemClock,
    @Optional() private readonly throttle: LoginThrottle = new LoginThrottle(DEFAULT_TRACKER_LIMITS),
  ) {
    const lifetime = {
      ...DEFAULT_SESSION_LIFETIME,
      ...(config?.sessionIdleMs && { idleMs: config.sessionIdleMs }),
      ...(config?.sessionMaxAgeMs && { maxAgeMs: config.sessionMaxAgeMs }),
    };
    this.lifetime = new SessionLifetime(users, sync, lifetime, clock);
    registerAuthAppliers(sync, users, this.lifetime);
    sync.participate({
      name: 'auth',
      reset: () => this.users.clear(),
      describe: () => [
        ...this.users.all().map((u) => `user ${u.userId} ${u.passwordHash} ${u.createdAt}`),
        // expired tokens are purged by each tracker on its own time: the digest leaves them out
        ...this.users
          .tokens()
          .filter((t) => !this.lifetime.isExpired(t))
          .map((t) => `token ${t.tokenHash} ${t.userId}`),
      ],
      afterReplay: () => this.lifetime.purge(),
      exportRows: () => this.users.exportRows(),
      importRow: (row) => this.users.importRow(row),
    });
  }

  onApplicationBootstrap(): void {
    this.lifetime.start();
  }

  onApplicationShutdown(): void {
    this.lifetime.stop();
  }

  /** `from`: the creating peer's address, which may hash only so many passwords at once. */
  async createUser(userId: string, password: string, from = ''): Promise<void> {
    assertValidId('user', userId);
    if (password.length < 1 || password.length > MAX_PASSWORD) throw new InvalidPasswordError();
    if (this.users.get(userId)) throw new UserExistsError(userId);
    const passwordHash = await this.hashingFor(from, () => this.hasher.hash(password));
    if (this.users.get(userId)) throw new UserExistsError(userId); // created while the hash was computed
    this.sync.commit({ kind: OpKind.CreateUser, actor: '', userId, passwordHash });
  }

  /**
   * Logs the session in and returns a session token, which resumes it on any tracker after a failover.
   * Unknown user and wrong password are one refusal after the same work; during a backoff
   * (see LoginThrottle) the login is refused at once, without checking the password.
   */
  async login(session: Session, userId: string, password: string): Promise<string> {
    this.assertSessionFree(session);
    const address = session.remoteHost ?? '';
    const waitMs = this.throttle.waitMs(address, userId);
    if (waitMs > 0) throw new TryLaterError('too many failed logins', waitMs / 1000);
    this.dummyHash ??= this.hasher.hash(randomBytes(16).toString('hex'));
    const user = this.users.get(userId);
    const stored = user?.passwordHash ?? (await this.dummyHash);
    const matches = await this.hashingFor(address, () => this.hasher.verify(password, stored));
    if (!user || !matches) {
      this.throttle.failed(address, userId);
      throw new LoginFailedError();
    }
    this.throttle.succeeded(address, userId);
    // checked after the password, so that nobody learns who is online; and again because
    // another login may have won while the hash was computed
    this.assertSessionFree(session);
    if (this.sessions.has(userId)) {
      throw new AlreadyLoggedInError(`${userId} is already logged in on another connection; log out there first`);
    }
    const token = randomBytes(32).toString('hex');
    const tokenHash = hashToken(token);
    this.sync.commit({ kind: OpKind.SessionOpen, actor: userId, tokenHash, requestId: NO_REQUEST });
    this.sessions.set(userId, session.connectionId);
    session.setUser(userId);
    session.tokenHash = tokenHash;
    return token;
  }

  /** Takes up the session a token stands for, on this connection (after the client's tracker went away). */
  resume(session: Session, token: string): string {
    this.assertSessionFree(session);
    const tokenHash = /^[0-9a-f]{64}$/.test(token) ? hashToken(token) : '';
    const userId = tokenHash ? this.users.tokenUser(tokenHash) : undefined;
    if (userId === undefined) throw new UnknownSessionError();
    if (this.sessions.has(userId)) {
      throw new AlreadyLoggedInError(`${userId} is already logged in on another connection; log out there first`);
    }
    this.lifetime.take(tokenHash); // SESSION_EXPIRED past the idle or absolute time
    this.sessions.set(userId, session.connectionId);
    session.setUser(userId);
    session.tokenHash = tokenHash;
    return userId;
  }

  /** Ends the session and revokes its token on every tracker. */
  logout(session: Session): string | undefined {
    const userId = session.user;
    const tokenHash = session.tokenHash;
    if (tokenHash) {
      this.sync.commit({ kind: OpKind.SessionClose, actor: userId ?? '', tokenHash });
      this.lifetime.closed(tokenHash);
    }
    this.endSession(session);
    return userId;
  }

  /** The connection is gone (or logged out): its user may log in elsewhere. */
  endSession(session: Session): void {
    const userId = session.user;
    if (userId === undefined) return;
    if (this.sessions.get(userId) === session.connectionId) this.sessions.delete(userId);
    if (session.tokenHash) this.lifetime.release(session.tokenHash); // closed without logout: idle from now
    session.clearUser();
    for (const listener of [...this.sessionEndedListeners]) {
      try {
        listener(userId, session.connectionId);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        this.logger.error(`session-ended listener failed for ${userId}: ${reason}`);
      }
    }
  }

  /**
   * Runs `listener` after a logged-in session ends, by logout or because its
   * connection closed. A listener that throws is logged and does not stop the
   * others. Returns a function that removes the listener.
   */
  onSessionEnded(listener: SessionEndedListener): () => void {
    this.sessionEndedListeners.push(listener);
    return () => {
      const i = this.sessionEndedListeners.indexOf(listener);
      if (i >= 0) this.sessionEndedListeners.splice(i, 1);
    };
  }

  isOnline(userId: string): boolean {
    return this.sessions.has(userId);
  }

  exists(userId: string): boolean {
    return this.users.get(userId) !== undefined;
  }

  /** Runs a password hash on one of `address`'s turns; TRY_LATER when it has none left. */
  private async hashingFor<T>(address: string, work: () => Promise<T>): Promise<T> {
    const release = this.throttle.startHashing(address);
    if (!release) throw new TryLaterError('too many password checks from your address at once', 1);
    try {
      return await work();
    } finally {
      release();
    }
  }

  private assertSessionFree(session: Session): void {
    if (session.user !== undefined) {
      throw new AlreadyLoggedInError(`already logged in as ${session.user} on this connection; log out first`);
    }
  }
}

const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');
