import { Injectable } from '@nestjs/common';

/** Who is logged in through this client, as the tracker last confirmed. */
@Injectable()
export class ClientSession {
  private current: string | undefined;

  get user(): string | undefined {
    return this.current;
  }

  requireUser(): string {
    if (this.current === undefined) throw new Error('you must log in first');
    return this.current;
  }

  loggedIn(userId: string): void {
    this.current = userId;
  }

  loggedOut(): void {
    this.current = undefined;
  }
}
