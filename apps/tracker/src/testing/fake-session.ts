import { Session } from '../common/session';
import { PeerContext } from '../transport/peer.context';

let nextConnectionId = 1000;

/** A connection as services see it, with a fresh connection id unless one is given. */
export function fakeSession(connectionId = nextConnectionId++): Session {
  let user: string | undefined;
  return {
    connectionId,
    get user() {
      return user;
    },
    setUser(userId: string) {
      user = userId;
    },
    clearUser() {
      user = undefined;
    },
  };
}

/** A transport context, optionally already logged in as `user`. */
export function peerContext(user?: string, connectionId = nextConnectionId++): PeerContext {
  const ctx = new PeerContext(connectionId, '127.0.0.1:40000');
  if (user !== undefined) ctx.setUser(user);
  return ctx;
}
