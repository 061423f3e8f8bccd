import {
  AcceptRequestCmd,
  Cmd,
  CreateGroupCmd,
  JoinGroupCmd,
  LeaveGroupCmd,
  ListRequestsCmd,
  okReply,
  OkReply,
} from '@app/protocol';
import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { Replicated } from '../sync/replicated.decorator';
import { PeerContext } from '../transport/peer.context';
import { GroupsService, LeaveOutcome } from './groups.service';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

@Controller()
export class GroupsController {
  constructor(private readonly groups: GroupsService) {}

  @MessagePattern(Cmd.CreateGroup)
  @Replicated()
  create(@Payload() cmd: CreateGroupCmd, @Ctx() ctx: PeerContext): OkReply {
    this.groups.create(ctx.requireUser(), cmd.groupId);
    return okReply(`group ${cmd.groupId} created; you own it`);
  }

  @MessagePattern(Cmd.JoinGroup)
  @Replicated()
  join(@Payload() cmd: JoinGroupCmd, @Ctx() ctx: PeerContext): OkReply {
    this.groups.join(ctx.requireUser(), cmd.groupId);
    return okReply(`asked to join group ${cmd.groupId}; waiting for the owner to accept`);
  }

  @MessagePattern(Cmd.LeaveGroup)
  @Replicated()
  leave(@Payload() cmd: LeaveGroupCmd, @Ctx() ctx: PeerContext): OkReply {
    return okReply(describeLeave(cmd.groupId, this.groups.leave(ctx.requireUser(), cmd.groupId)));
  }

  @MessagePattern(Cmd.ListGroups)
  list(@Ctx() ctx: PeerContext): OkReply {
    const groups = this.groups.list(ctx.requireUser());
    const lines = groups.map((g) => `${g.groupId} owner=${g.owner} members=${g.memberCount} you=${g.you}`);
    return okReply(groups.length === 0 ? 'no groups yet' : plural(groups.length, 'group'), lines);
  }

  @MessagePattern(Cmd.ListRequests)
  listRequests(@Payload() cmd: ListRequestsCmd, @Ctx() ctx: PeerContext): OkReply {
    const requests = this.groups.listRequests(ctx.requireUser(), cmd.groupId);
    return okReply(
      requests.length === 0
        ? `no pending requests for group ${cmd.groupId}`
        : `${plural(requests.length, 'pending request')} for group ${cmd.groupId}`,
      requests,
    );
  }

  @MessagePattern(Cmd.AcceptRequest)
  @Replicated()
  accept(@Payload() cmd: AcceptRequestCmd, @Ctx() ctx: PeerContext): OkReply {
    this.groups.accept(ctx.requireUser(), cmd.groupId, cmd.userId);
    return okReply(`${cmd.userId} is now a member of group ${cmd.groupId}`);
  }
}

function describeLeave(groupId: string, outcome: LeaveOutcome): string {
  switch (outcome.kind) {
    case 'left':
      return `left group ${groupId}`;
    case 'left-owner':
      return `left group ${groupId}; ${outcome.newOwner} owns it now`;
    case 'deleted':
      return `left group ${groupId}; it had no members left and was deleted`;
    case 'withdrew':
      return `withdrew your request to join group ${groupId}`;
  }
}
