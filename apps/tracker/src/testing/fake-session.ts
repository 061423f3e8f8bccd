import { Session } from '../common/session';
import { PeerContext } from '../transport/peer.context';

let nextConnectionId = 1000;

/** A connection as services see it, with a fresh connection id unless one is given. Like PeerContext, clearing the user forgets the token. */
export function fakeSession(connectionId = nextConnectionId++): Session {
  let user: string | undefined;
  const session: Session = {
    connectionId,
    tokenHash: undefined,
    get user() {
      return user;
    },
    setUser(userId: string) {
      user = userId;
    },
    clearUser() {
      user = undefined;
      session.tokenHash = undefined;
    },
  };
  return session;
}

/** A transport context, optionally already logged in as `user`. */
export function peerContext(user?: string, connectionId = nextConnectionId++): PeerContext {
  const ctx = new PeerContext(connectionId, '127.0.0.1:40000');
  if (user !== undefined) ctx.setUser(user);
  return ctx;
}
