import { StampedOp } from '@app/protocol';
import { GroupRecord } from '../groups/group.store';
import { UserRecord } from '../auth/user.store';

export function userRecord(overrides: Partial<UserRecord> = {}): UserRecord {
  return { userId: 'alice', passwordHash: 'scrypt$1024$8$1$c2FsdA==$a2V5', createdAt: 1_700_000_000_000, ...overrides };
}

export function groupRecord(overrides: Partial<GroupRecord> = {}): GroupRecord {
  return { groupId: 'g1', owner: 'alice', createdAt: 1_700_000_000_000, ...overrides };
}

/** A replicated change from tracker 1; `seq` and `lamport` default to each other. */
export function stampedOp(overrides: Partial<StampedOp> = {}): StampedOp {
  const seq = overrides.seq ?? overrides.lamport ?? 1;
  return {
    kind: 'create_group',
    args: ['g1'],
    actor: 'alice',
    time: 1_700_000_000_000,
    requestId: '',
    origin: 1,
    seq,
    lamport: seq,
    ...overrides,
  };
}
