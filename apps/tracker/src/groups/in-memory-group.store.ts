import { Injectable, Optional } from '@nestjs/common';
import { Checkpointable, InMemoryUnitOfWork, Restore, restoringOnError } from '../storage/in-memory-unit-of-work';
import { SnapshotRow } from '../storage/snapshot-row';
import { GroupRecord, GroupStore, GroupSummary, readGroupRow } from './group.store';

interface GroupState {
  record: GroupRecord;
  /** Insertion order is join order. */
  members: Set<string>;
  requests: Set<string>;
}

@Injectable()
export class InMemoryGroupStore implements GroupStore, Checkpointable {
  private readonly groups = new Map<string, GroupState>();

  /** Enlists with the in-memory unit of work when one is provided beside it, so that a failed change undoes it too. */
  constructor(@Optional() work?: InMemoryUnitOfWork) {
    work?.enlist(this);
  }

  transaction<T>(work: () => T): T {
    return restoringOnError(this, work);
  }

  checkpoint(): Restore {
    const snapshot = new Map(
      [...this.groups].map(([id, g]) => [
        id,
        { record: g.record, members: new Set(g.members), requests: new Set(g.requests) },
      ]),
    );
    return () => {
      this.groups.clear();
      for (const [id, g] of snapshot) this.groups.set(id, g);
    };
  }

  create(group: GroupRecord): boolean {
    if (this.groups.has(group.groupId)) return false;
    this.groups.set(group.groupId, { record: { ...group }, members: new Set([group.owner]), requests: new Set() });
    return true;
  }

  get(groupId: string): GroupRecord | undefined {
    return this.groups.get(groupId)?.record;
  }

  list(): GroupSummary[] {
    return [...this.groups.values()]
      .map((g) => ({ ...g.record, memberCount: g.members.size }))
      .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0));
  }

  members(groupId: string): string[] {
    return [...(this.groups.get(groupId)?.members ?? [])];
  }

  isMember(groupId: string, userId: string): boolean {
    return this.groups.get(groupId)?.members.has(userId) ?? false;
  }

  groupsOf(userId: string): string[] {
    return [...this.groups.values()]
      .filter((g) => g.members.has(userId))
      .map((g) => g.record.groupId)
      .sort();
  }

  addMember(groupId: string, userId: string): void {
    this.groups.get(groupId)?.members.add(userId);
  }

  removeMember(groupId: string, userId: string): void {
    this.groups.get(groupId)?.members.delete(userId);
  }

  setOwner(groupId: string, userId: string): void {
    const g = this.groups.get(groupId);
    if (g) g.record = { ...g.record, owner: userId };
  }

  delete(groupId: string): void {
    this.groups.delete(groupId);
  }

  addRequest(groupId: string, userId: string): void {
    this.groups.get(groupId)?.requests.add(userId);
  }

  hasRequest(groupId: string, userId: string): boolean {
    return this.groups.get(groupId)?.requests.has(userId) ?? false;
  }

  removeRequest(groupId: string, userId: string): void {
    this.groups.get(groupId)?.requests.delete(userId);
  }

  requests(groupId: string): string[] {
    return [...(this.groups.get(groupId)?.requests ?? [])];
  }

  requestsOf(userId: string): string[] {
    return [...this.groups.values()]
      .filter((g) => g.requests.has(userId))
      .map((g) => g.record.groupId)
      .sort();
  }

  clear(): void {
    this.groups.clear();
  }

  *exportRows(): Iterable<SnapshotRow> {
    for (const g of this.list()) {
      yield ['group', g.groupId, g.owner, String(g.createdAt)];
      for (const userId of this.members(g.groupId)) yield ['member', g.groupId, userId];
      for (const userId of this.requests(g.groupId)) yield ['request', g.groupId, userId];
    }
  }

  importRow(row: SnapshotRow): void {
    const read = readGroupRow(row, (groupId) => this.groups.has(groupId));
    if (read.kind === 'group') {
      this.groups.set(read.group.groupId, { record: { ...read.group }, members: new Set(), requests: new Set() });
    } else if (read.kind === 'member') {
      this.addMember(read.groupId, read.userId);
    } else {
      this.addRequest(read.groupId, read.userId);
    }
  }
}
