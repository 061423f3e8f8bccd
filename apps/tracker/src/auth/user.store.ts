import { idField, intField, rowFields, SnapshotRow } from '../storage/snapshot-row';

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
  /** Every user and token as snapshot rows (`userRow`, `tokenRow`), read a page at a time. */
  exportRows(): Iterable<SnapshotRow>;
  /** Adds one row of a snapshot (see `readUserRow`); throws SnapshotRowError on a row it cannot read. */
  importRow(row: SnapshotRow): void;
}

export const userRow = (u: UserRecord): SnapshotRow => ['user', u.userId, u.passwordHash, String(u.createdAt)];

export const tokenRow = (t: SessionTokenRecord): SnapshotRow => [
  'token',
  t.tokenHash,
  t.userId,
  String(t.createdAt),
  String(t.heldBy),
  String(t.seenAt),
];

/** Inverse of `userRow` and `tokenRow`. */
export function readUserRow(row: SnapshotRow): { user: UserRecord } | { token: SessionTokenRecord } {
  const fields = rowFields(row, { user: 3, token: 5 });
  if (row[0] === 'user') {
    const [userId, passwordHash, createdAt] = fields;
    return {
      user: {
        userId: idField(userId, 'user id'),
        passwordHash: idField(passwordHash, 'password hash'),
        createdAt: intField(createdAt, 'time'),
      },
    };
  }
  const [tokenHash, userId, createdAt, heldBy, seenAt] = fields;
  return {
    token: {
      tokenHash: idField(tokenHash, 'token hash'),
      userId: idField(userId, 'user id'),
      createdAt: intField(createdAt, 'time'),
      heldBy: intField(heldBy, 'tracker number'),
      seenAt: intField(seenAt, 'time'),
    },
  };
}
