import { OpKind } from '@app/protocol';
import { SyncService } from '../sync/sync.service';
import { GroupStore } from './group.store';

/** A group op reads and writes that group (its owner, members, requests and, on leaving, its files) and its actor. */
export const groupFootprint = ({ actor, groupId }: { readonly actor: string; readonly groupId: string }): string[] => [
  `g:${groupId}`,
  `u:${actor}`,
];

/** What the group appliers tell the groups service. */
export interface GroupApplierHooks {
  /** `actor` left `groupId` (not a withdrawn request), inside the change's unit of work; throwing undoes it. */
  memberLeft(userId: string, groupId: string, groupDeleted: boolean): void;
}

/**
 * The groups module's changes, applied on every tracker in the same order: groups, members and join requests.
 * A change that no longer fits does nothing.
 */
export function registerGroupAppliers(sync: SyncService, groups: GroupStore, hooks: GroupApplierHooks): void {
  sync.register(
    OpKind.CreateGroup,
    ({ groupId, actor, time }) => {
      groups.create({ groupId, owner: actor, createdAt: time });
    },
    groupFootprint,
  );
  sync.register(
    OpKind.JoinGroup,
    ({ actor, groupId }) => {
      if (!groups.get(groupId) || groups.isMember(groupId, actor)) return;
      groups.addRequest(groupId, actor);
    },
    groupFootprint,
  );
  sync.register(
    OpKind.LeaveGroup,
    ({ actor, groupId }) => {
      const group = groups.get(groupId);
      if (!group) return;
      if (!groups.isMember(groupId, actor)) {
        groups.removeRequest(groupId, actor);
        return;
      }
      groups.removeMember(groupId, actor);
      let deleted = false;
      if (group.owner === actor) {
        const [successor] = groups.members(groupId);
        if (successor === undefined) {
          groups.delete(groupId);
          deleted = true;
        } else {
          groups.setOwner(groupId, successor);
        }
      }
      hooks.memberLeft(actor, groupId, deleted);
    },
    groupFootprint,
  );
  sync.register(
    OpKind.AcceptRequest,
    ({ actor, groupId, candidate }) => {
      const group = groups.get(groupId);
      if (!group || group.owner !== actor || !groups.hasRequest(groupId, candidate)) return;
      groups.removeRequest(groupId, candidate);
      if (!groups.isMember(groupId, candidate)) groups.addMember(groupId, candidate);
    },
    ({ actor, groupId, candidate }) => [`g:${groupId}`, `u:${actor}`, `u:${candidate}`],
  );
}
