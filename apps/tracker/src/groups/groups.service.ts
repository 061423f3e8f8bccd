import { OpKind } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { assertValidId } from '../common/ids';
import {
  AlreadyMemberError,
  GroupExistsError,
  NoSuchRequestError,
  NotGroupOwnerError,
  NotMemberError,
  RequestPendingError,
  UnknownGroupError,
} from './groups.errors';
import { GroupRecord, GroupStore } from './group.store';
import { registerGroupAppliers } from './groups.appliers';
import { GROUP_STORE } from './groups.tokens';
import { SyncService } from '../sync/sync.service';

export type Standing = 'owner' | 'member' | 'requested' | 'none';

export interface GroupView {
  readonly groupId: string;
  readonly owner: string;
  readonly memberCount: number;
  readonly you: Standing;
}

export type LeaveOutcome =
  | { readonly kind: 'left' }
  | { readonly kind: 'left-owner'; readonly newOwner: string }
  | { readonly kind: 'deleted' }
  | { readonly kind: 'withdrew' };

/** Called when `userId` has left `groupId`; `groupDeleted` when they were its last member and the group is gone. */
export type MemberLeftListener = (userId: string, groupId: string, groupDeleted: boolean) => void;

/** Group membership and join requests. The owner is always a member. */
@Injectable()
export class GroupsService {
  private readonly memberLeftListeners: MemberLeftListener[] = [];

  constructor(
    @Inject(GROUP_STORE) private readonly groups: GroupStore,
    private readonly sync: SyncService,
  ) {
    registerGroupAppliers(sync, groups, {
      memberLeft: (userId, groupId, deleted) => {
        for (const listener of this.memberLeftListeners) listener(userId, groupId, deleted);
      },
    });
    sync.participate({
      name: 'groups',
      reset: () => this.groups.clear(),
      describe: () => this.describe(),
      exportRows: () => this.groups.exportRows(),
      importRow: (row) => this.groups.importRow(row),
    });
  }

  create(userId: string, groupId: string): void {
    assertValidId('group', groupId);
    if (this.groups.get(groupId)) throw new GroupExistsError(groupId);
    this.sync.commit({ kind: OpKind.CreateGroup, actor: userId, groupId });
  }

  join(userId: string, groupId: string): void {
    this.require(groupId);
    if (this.groups.isMember(groupId, userId)) throw new AlreadyMemberError(groupId);
    if (this.groups.hasRequest(groupId, userId)) throw new RequestPendingError(groupId);
    this.sync.commit({ kind: OpKind.JoinGroup, actor: userId, groupId });
  }

  /** Leaves a group, or withdraws a pending request to join it. An owner who leaves hands the group on. */
  leave(userId: string, groupId: string): LeaveOutcome {
    const group = this.require(groupId);
    let outcome: LeaveOutcome;
    if (!this.groups.isMember(groupId, userId)) {
      if (!this.groups.hasRequest(groupId, userId)) throw new NotMemberError(groupId);
      outcome = { kind: 'withdrew' };
    } else if (group.owner !== userId) {
      outcome = { kind: 'left' };
    } else {
      const successor = this.groups.members(groupId).find((m) => m !== userId);
      outcome = successor === undefined ? { kind: 'deleted' } : { kind: 'left-owner', newOwner: successor };
    }
    this.sync.commit({ kind: OpKind.LeaveGroup, actor: userId, groupId });
    return outcome;
  }

  /**
   * Runs `listener` whenever a member leaves a group (not when a request is
   * withdrawn), inside the leave transaction and after the group has been
   * handed on or deleted; if it throws, the leave is undone. Returns a
   * function that removes the listener.
   */
  onMemberLeft(listener: MemberLeftListener): () => void {
    this.memberLeftListeners.push(listener);
    return () => {
      const i = this.memberLeftListeners.indexOf(listener);
      if (i >= 0) this.memberLeftListeners.splice(i, 1);
    };
  }

  listRequests(userId: string, groupId: string): string[] {
    this.requireOwner(userId, groupId);
    return this.groups.requests(groupId);
  }

  accept(userId: string, groupId: string, candidate: string): void {
    assertValidId('user', candidate);
    this.requireOwner(userId, groupId);
    if (this.groups.isMember(groupId, candidate)) throw new AlreadyMemberError(groupId, candidate);
    if (!this.groups.hasRequest(groupId, candidate)) throw new NoSuchRequestError(groupId, candidate);
    this.sync.commit({ kind: OpKind.AcceptRequest, actor: userId, groupId, candidate });
  }

  list(userId: string): GroupView[] {
    const memberOf = new Set(this.groups.groupsOf(userId));
    const requested = new Set(this.groups.requestsOf(userId));
    return this.groups.list().map((g) => ({
      groupId: g.groupId,
      owner: g.owner,
      memberCount: g.memberCount,
      you:
        g.owner === userId
          ? 'owner'
          : memberOf.has(g.groupId)
            ? 'member'
            : requested.has(g.groupId)
              ? 'requested'
              : 'none',
    }));
  }

  isMember(userId: string, groupId: string): boolean {
    return this.groups.isMember(groupId, userId);
  }

  /** Every group id, sorted. */
  allGroupIds(): string[] {
    return this.groups.list().map((g) => g.groupId);
  }

  /** Throws unless the group exists and the user is in it. */
  assertMember(userId: string, groupId: string): void {
    this.require(groupId);
    if (!this.groups.isMember(groupId, userId)) throw new NotMemberError(groupId);
  }

  members(groupId: string): string[] {
    this.require(groupId);
    return this.groups.members(groupId);
  }

  private describe(): string[] {
    return this.groups
      .list()
      .flatMap((g) => [
        `group ${g.groupId} owner=${g.owner} created=${g.createdAt}`,
        `members ${g.groupId} ${this.groups.members(g.groupId).join(',')}`,
        `requests ${g.groupId} ${this.groups.requests(g.groupId).join(',')}`,
      ]);
  }

  private require(groupId: string): GroupRecord {
    assertValidId('group', groupId);
    const group = this.groups.get(groupId);
    if (!group) throw new UnknownGroupError(groupId);
    return group;
  }

  private requireOwner(userId: string, groupId: string): GroupRecord {
    const group = this.require(groupId);
    if (group.owner !== userId) throw new NotGroupOwnerError(groupId);
    return group;
  }
}
