import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { SQLITE_DB } from '../storage/storage.tokens';
import { UserRecord, UserStore } from './user.store';

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

  constructor(@Inject(SQLITE_DB) db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS users (
      user_id TEXT PRIMARY KEY,
      password_hash TEXT NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    this.insert = db.prepare('INSERT OR IGNORE INTO users (user_id, password_hash, created_at) VALUES (?, ?, ?)');
    this.select = db.prepare('SELECT user_id, password_hash, created_at FROM users WHERE user_id = ?');
    this.counter = db.prepare('SELECT count(*) AS n FROM users');
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
}
