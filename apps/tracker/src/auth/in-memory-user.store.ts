import { Injectable } from '@nestjs/common';
import { UserRecord, UserStore } from './user.store';

@Injectable()
export class InMemoryUserStore implements UserStore {
  private readonly users = new Map<string, UserRecord>();

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
}
