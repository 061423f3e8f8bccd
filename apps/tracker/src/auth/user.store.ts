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
  readonly createdAt: number;
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
  removeToken(tokenHash: string): boolean;
  /** Every live session token, by hash. */
  tokens(): SessionTokenRecord[];
  /** Forgets every user and token (before the state is rebuilt from the change log). */
  clear(): void;
}
