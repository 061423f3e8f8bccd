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
}
