import { Injectable, Optional } from '@nestjs/common';
import { Checkpointable, InMemoryUnitOfWork, Restore } from '../storage/in-memory-unit-of-work';
import { SnapshotRow } from '../storage/snapshot-row';
import { readUserRow, SessionTokenRecord, tokenRow, UserRecord, userRow, UserStore } from './user.store';

@Injectable()
export class InMemoryUserStore implements UserStore, Checkpointable {
  private readonly users = new Map<string, UserRecord>();
  private readonly tokenMap = new Map<string, SessionTokenRecord>();

  /** Enlists with the in-memory unit of work when one is provided beside it, so that a failed change undoes it too. */
  constructor(@Optional() work?: InMemoryUnitOfWork) {
    work?.enlist(this);
  }

  /** Records are replaced, never changed in place: copies of the maps hold the state. */
  checkpoint(): Restore {
    const users = new Map(this.users);
    const tokens = new Map(this.tokenMap);
    return () => {
      this.users.clear();
      users.forEach((u, id) => this.users.set(id, u));
      this.tokenMap.clear();
      tokens.forEach((t, hash) => this.tokenMap.set(hash, t));
    };
  }

  add(user: UserRecord): boolean {
    if (this.users.has(user.userId)) return false;
    this.users.set(user.userId, { ...user });
    return true;
  }

  get(userId: string): UserRecord | undefined {
    const user = this.users.get(userId);
    return user && { ...user };
  }

  count(): number {
    return this.users.size;
  }

  all(): UserRecord[] {
    return [...this.users.values()].sort((a, b) => (a.userId < b.userId ? -1 : 1)).map((u) => ({ ...u }));
  }

  addToken(token: SessionTokenRecord): boolean {
    if (this.tokenMap.has(token.tokenHash)) return false;
    this.tokenMap.set(token.tokenHash, { ...token });
    return true;
  }

  tokenUser(tokenHash: string): string | undefined {
    return this.tokenMap.get(tokenHash)?.userId;
  }

  token(tokenHash: string): SessionTokenRecord | undefined {
    const token = this.tokenMap.get(tokenHash);
    return token && { ...token };
  }

  touchToken(tokenHash: string, heldBy: number, seenAt: number): boolean {
    const token = this.tokenMap.get(tokenHash);
    if (token) this.tokenMap.set(tokenHash, { ...token, heldBy, seenAt });
    return token !== undefined;
  }

  removeToken(tokenHash: string): boolean {
    return this.tokenMap.delete(tokenHash);
  }

  tokens(): SessionTokenRecord[] {
    return [...this.tokenMap.values()].sort((a, b) => (a.tokenHash < b.tokenHash ? -1 : 1)).map((t) => ({ ...t }));
  }

  clear(): void {
    this.users.clear();
    this.tokenMap.clear();
  }

  *exportRows(): Iterable<SnapshotRow> {
    for (const u of this.all()) yield userRow(u);
    for (const t of this.tokens()) yield tokenRow(t);
  }

  importRow(row: SnapshotRow): void {
    const read = readUserRow(row);
    if ('user' in read) this.add(read.user);
    else this.addToken(read.token);
  }
}
