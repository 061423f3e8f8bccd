import { idField, intField, rowFields, SnapshotRow, SnapshotRowError } from '../storage/snapshot-row';

export interface GroupRecord {
  readonly groupId: string;
  readonly owner: string;
  readonly createdAt: number;
}

export interface GroupSummary extends GroupRecord {
  readonly memberCount: number;
}

/**
 * Groups, their members in the order they joined, and pending join requests.
 * Every method is synchronous; `transaction` makes a sequence of them atomic.
 */
export interface GroupStore {
  transaction<T>(work: () => T): T;
  /** Creates the group with its owner as first member; false when the id is taken. */
  create(group: GroupRecord): boolean;
  get(groupId: string): GroupRecord | undefined;
  /** Every group, ordered by id. */
  list(): GroupSummary[];
  /** Member ids, longest-standing first. */
  members(groupId: string): string[];
  isMember(groupId: string, userId: string): boolean;
  /** Group ids the user is a member of. */
  groupsOf(userId: string): string[];
  addMember(groupId: string, userId: string): void;
  removeMember(groupId: string, userId: string): void;
  setOwner(groupId: string, userId: string): void;
  /** Removes the group with its members and requests. */
  delete(groupId: string): void;
  addRequest(groupId: string, userId: string): void;
  hasRequest(groupId: string, userId: string): boolean;
  removeRequest(groupId: string, userId: string): void;
  /** Pending requesters, oldest first. */
  requests(groupId: string): string[];
  /** Group ids the user has asked to join. */
  requestsOf(userId: string): string[];
  /** Forgets every group (before the state is rebuilt from the change log). */
  clear(): void;
  /**
   * Every group, member and request as snapshot rows (`group <id> <owner> <created>`, `member <group> <user>`,
   * `request <group> <user>`), a group before its members and requests, members and requests in their order;
   * read a page at a time.
   */
  exportRows(): Iterable<SnapshotRow>;
  /** Adds one row of a snapshot (a group comes without members); throws SnapshotRowError on one it cannot read. */
  importRow(row: SnapshotRow): void;
}

export type GroupSnapshotRow =
  | { readonly kind: 'group'; readonly group: GroupRecord }
  | { readonly kind: 'member' | 'request'; readonly groupId: string; readonly userId: string };

/** Reads a row `exportRows` wrote; a member or request of a group `known` does not hold is refused. */
export function readGroupRow(row: SnapshotRow, known: (groupId: string) => boolean): GroupSnapshotRow {
  const fields = rowFields(row, { group: 3, member: 2, request: 2 });
  if (row[0] === 'group') {
    const [groupId, owner, createdAt] = fields;
    if (known(groupId)) throw new SnapshotRowError(`group ${groupId.slice(0, 40)} twice in a snapshot`);
    return {
      kind: 'group',
      group: {
        groupId: idField(groupId, 'group id'),
        owner: idField(owner, 'user id'),
        createdAt: intField(createdAt, 'time'),
      },
    };
  }
  const [groupId, userId] = fields;
  if (!known(groupId))
    throw new SnapshotRowError(`a snapshot '${row[0]}' row of group ${groupId.slice(0, 40)} before the group`);
  return { kind: row[0] as 'member' | 'request', groupId, userId: idField(userId, 'user id') };
}
