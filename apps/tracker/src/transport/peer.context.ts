import { BaseRpcContext } from '@nestjs/microservices';
import { NotLoggedInError } from '../common/domain.error';

/**
 * One TCP connection to the tracker. It is the session: the logged-in user
 * belongs to the connection, never to a port number the peer claims.
 */
export class PeerContext extends BaseRpcContext<[]> {
  private userId: string | undefined;

  constructor(
    readonly connectionId: number,
    readonly remoteAddress: string,
  ) {
    super([]);
  }

  get user(): string | undefined {
    return this.userId;
  }

  requireUser(): string {
    if (this.userId === undefined) throw new NotLoggedInError();
    return this.userId;
  }

  setUser(userId: string): void {
    this.userId = userId;
  }

  clearUser(): void {
    this.userId = undefined;
  }
}
