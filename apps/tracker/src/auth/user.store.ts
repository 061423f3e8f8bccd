export interface UserRecord {
  readonly userId: string;
  /** `scrypt$N$r$p$salt$hash`, never the password. */
  readonly passwordHash: string;
  readonly createdAt: number;
}

export interface SessionTokenRecord {
  /** SHA-256 of the token, never the token itself. */
  readonly tokenHash: string;
  readonly userId: string;
  /** Time stamp of the `session_open` change: the absolute age counts from here. */
  readonly createdAt: number;
  /** Tracker whose connection holds the session (0: none); from the last open, resume or release. */
  readonly heldBy: number;
  /** Time stamp of the last open, resume or release: the idle time counts from here while nobody holds it. */
  readonly seenAt: number;
}

export interface UserStore {
  /** Adds the user; false when the id is taken. */
  add(user: UserRecord): boolean;
  get(userId: string): UserRecord | undefined;
  count(): number;
  /** Every user, by id. */
  all(): UserRecord[];
  addToken(token: SessionTokenRecord): boolean;
  tokenUser(tokenHash: string): string | undefined;
  token(tokenHash: string): SessionTokenRecord | undefined;
  /** Records who holds the token since when; false when there is no such token. */
  touchToken(tokenHash: string, heldBy: number, seenAt: number): boolean;
  removeToken(tokenHash: string): boolean;
  /** Every live session token, by hash. */
  tokens(): SessionTokenRecord[];
  /** Forgets every user and token (before the state is rebuilt from the change log). */
  clear(): void;
}
