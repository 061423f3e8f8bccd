import { OpBody, OpMeta, OpStamp, StampedOp } from '@app/protocol';
import { GroupRecord } from '../groups/group.store';
import { UserRecord } from '../auth/user.store';

export function userRecord(overrides: Partial<UserRecord> = {}): UserRecord {
  return { userId: 'alice', passwordHash: 'scrypt$1024$8$1$c2FsdA==$a2V5', createdAt: 1_700_000_000_000, ...overrides };
}

export function groupRecord(overrides: Partial<GroupRecord> = {}): GroupRecord {
  return { groupId: 'g1', owner: 'alice', createdAt: 1_700_000_000_000, ...overrides };
}

/**
 * A replicated change from tracker 1, by default `create_group g1` by alice; `seq` and `lamport` default to
 * each other. A `kind` given comes with all of its fields.
 */
export function stampedOp(overrides: Partial<OpMeta & OpStamp> & (OpBody | object) = {}): StampedOp {
  const seq = overrides.seq ?? overrides.lamport ?? 1;
  const body = 'kind' in overrides ? {} : { kind: 'create_group', groupId: 'g1' };
  return {
    ...body,
    actor: 'alice',
    time: 1_700_000_000_000,
    requestId: '',
    origin: 1,
    seq,
    lamport: seq,
    ...overrides,
  } as StampedOp;
}
