import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { SQLITE_DB } from '../storage/storage.tokens';
import { SnapshotRow } from '../storage/snapshot-row';
import { readUserRow, SessionTokenRecord, tokenRow, UserRecord, userRow, UserStore } from './user.store';

interface TokenRow {
  token_hash: string;
  user_id: string;
  created_at: number;
  held_by: number;
  seen_at: number;
}

const toToken = (r: TokenRow): SessionTokenRecord => ({
  tokenHash: r.token_hash,
  userId: r.user_id,
  createdAt: r.created_at,
  heldBy: r.held_by,
  seenAt: r.seen_at,
});

const EXPORT_PAGE = 256;

interface UserRow {
  user_id: string;
  password_hash: string;
  created_at: number;
}

@Injectable()
export class SqliteUserStore implements UserStore {
  private readonly insert: Database.Statement<[string, string, number]>;
  private readonly select: Database.Statement<[string], UserRow>;
  private readonly counter: Database.Statement<[], { n: number }>;
  private readonly sql;

  constructor(@Inject(SQLITE_DB) db: Database.Database) {
    this.insert = db.prepare('INSERT OR IGNORE INTO users (user_id, password_hash, created_at) VALUES (?, ?, ?)');
    this.select = db.prepare('SELECT user_id, password_hash, created_at FROM users WHERE user_id = ?');
    this.counter = db.prepare('SELECT count(*) AS n FROM users');
    this.sql = {
      all: db.prepare<[], UserRow>('SELECT user_id, password_hash, created_at FROM users ORDER BY user_id'),
      addToken: db.prepare<[string, string, number, number, number]>(
        'INSERT OR IGNORE INTO session_tokens (token_hash, user_id, created_at, held_by, seen_at) VALUES (?, ?, ?, ?, ?)',
      ),
      tokenUser: db.prepare<[string], string>('SELECT user_id FROM session_tokens WHERE token_hash = ?').pluck(),
      token: db.prepare<[string], TokenRow>('SELECT * FROM session_tokens WHERE token_hash = ?'),
      touchToken: db.prepare<[number, number, string]>(
        'UPDATE session_tokens SET held_by = ?, seen_at = ? WHERE token_hash = ?',
      ),
      removeToken: db.prepare<[string]>('DELETE FROM session_tokens WHERE token_hash = ?'),
      tokens: db.prepare<[], TokenRow>('SELECT * FROM session_tokens ORDER BY token_hash'),
      clear: db.prepare('DELETE FROM users'),
      clearTokens: db.prepare('DELETE FROM session_tokens'),
      userPage: db.prepare<[string, number], UserRow>(
        'SELECT user_id, password_hash, created_at FROM users WHERE user_id > ? ORDER BY user_id LIMIT ?',
      ),
      tokenPage: db.prepare<[string, number], TokenRow>(
        'SELECT * FROM session_tokens WHERE token_hash > ? ORDER BY token_hash LIMIT ?',
      ),
    };
  }

  add(user: UserRecord): boolean {
    return this.insert.run(user.userId, user.passwordHash, user.createdAt).changes === 1;
  }

  get(userId: string): UserRecord | undefined {
    const row = this.select.get(userId);
    return row && { userId: row.user_id, passwordHash: row.password_hash, createdAt: row.created_at };
  }

  count(): number {
    return this.counter.get()?.n ?? 0;
  }

  all(): UserRecord[] {
    return this.sql.all
      .all()
      .map((row) => ({ userId: row.user_id, passwordHash: row.password_hash, createdAt: row.created_at }));
  }

  addToken(token: SessionTokenRecord): boolean {
    const { tokenHash, userId, createdAt, heldBy, seenAt } = token;
    return this.sql.addToken.run(tokenHash, userId, createdAt, heldBy, seenAt).changes === 1;
  }

  token(tokenHash: string): SessionTokenRecord | undefined {
    const row = this.sql.token.get(tokenHash);
    return row && toToken(row);
  }

  touchToken(tokenHash: string, heldBy: number, seenAt: number): boolean {
    return this.sql.touchToken.run(heldBy, seenAt, tokenHash).changes === 1;
  }

  tokenUser(tokenHash: string): string | undefined {
    return this.sql.tokenUser.get(tokenHash);
  }

  removeToken(tokenHash: string): boolean {
    return this.sql.removeToken.run(tokenHash).changes === 1;
  }

  tokens(): SessionTokenRecord[] {
    return this.sql.tokens.all().map(toToken);
  }

  clear(): void {
    this.sql.clear.run();
    this.sql.clearTokens.run();
  }

  /** A page at a time, so that the caller may write to the database between pages. */
  *exportRows(): Iterable<SnapshotRow> {
    for (let after = ''; ;) {
      const users = this.sql.userPage.all(after, EXPORT_PAGE);
      for (const r of users)
        yield userRow({ userId: r.user_id, passwordHash: r.password_hash, createdAt: r.created_at });
      if (users.length < EXPORT_PAGE) break;
      after = users[users.length - 1].user_id;
    }
    for (let after = ''; ;) {
      const tokens = this.sql.tokenPage.all(after, EXPORT_PAGE);
      for (const r of tokens) yield tokenRow(toToken(r));
      if (tokens.length < EXPORT_PAGE) break;
      after = tokens[tokens.length - 1].token_hash;
    }
  }

  importRow(row: SnapshotRow): void {
    const read = readUserRow(row);
    if ('user' in read) this.add(read.user);
    else this.addToken(read.token);
  }
}
