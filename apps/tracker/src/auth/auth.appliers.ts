import { OpKind } from '@app/protocol';
import { SyncService } from '../sync/sync.service';
import { UserStore } from './user.store';

/** A session op reads and writes its token only. */
export const tokenFootprint = ({ tokenHash }: { readonly tokenHash: string }): string[] => [`t:${tokenHash}`];

/** What the auth appliers need of the session rules beside the store. */
export interface SessionApplierHooks {
  /** A `session_open` was applied (in a replay too): see SessionLifetime.opened. */
  opened(tokenHash: string, origin: number): void;
}

/**
 * The auth module's changes, applied on every tracker in the same order: accounts and session tokens.
 * A change that no longer fits does nothing.
 */
export function registerAuthAppliers(sync: SyncService, users: UserStore, hooks: SessionApplierHooks): void {
  sync.register(
    OpKind.CreateUser,
    ({ userId, passwordHash, time }) => {
      users.add({ userId, passwordHash, createdAt: time });
    },
    ({ userId }) => [`u:${userId}`],
  );
  sync.register(
    OpKind.SessionOpen,
    ({ actor, tokenHash, time, origin }) => {
      users.addToken({ tokenHash, userId: actor, createdAt: time, heldBy: origin, seenAt: time });
      hooks.opened(tokenHash, origin);
    },
    ({ actor, tokenHash }) => [`u:${actor}`, `t:${tokenHash}`],
  );
  sync.register(
    OpKind.SessionClose,
    ({ tokenHash }) => {
      users.removeToken(tokenHash);
    },
    tokenFootprint,
  );
  sync.register(
    OpKind.SessionResume,
    ({ tokenHash, origin, time }) => {
      users.touchToken(tokenHash, origin, time);
    },
    tokenFootprint,
  );
  sync.register(
    OpKind.SessionSeen,
    ({ tokenHash, origin, time }) => {
      const token = users.token(tokenHash);
      // only the holder releases: a late release from a tracker the session has left changes nothing
      if (token && token.heldBy === origin) users.touchToken(tokenHash, 0, Math.max(token.seenAt, time));
    },
    tokenFootprint,
  );
}
