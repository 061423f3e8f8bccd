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
import { Controller, Logger } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { Replicated } from '../sync/replicated.decorator';
import { PeerContext } from '../transport/peer.context';
import { GroupsService, LeaveOutcome } from './groups.service';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

@Controller()
export class GroupsController {
  private readonly logger = new Logger(GroupsController.name);

  constructor(private readonly groups: GroupsService) {}

  @MessagePattern(Cmd.CreateGroup)
  @Replicated()
  create(@Payload() cmd: CreateGroupCmd, @Ctx() ctx: PeerContext): OkReply {
    const userId = ctx.requireUser();
    this.groups.create(userId, cmd.groupId);
    this.logger.log({ message: `${userId} created group ${cmd.groupId}`, user: userId, group: cmd.groupId });
    return okReply(`group ${cmd.groupId} created; you own it`);
  }

  @MessagePattern(Cmd.JoinGroup)
  @Replicated()
  join(@Payload() cmd: JoinGroupCmd, @Ctx() ctx: PeerContext): OkReply {
    const userId = ctx.requireUser();
    this.groups.join(userId, cmd.groupId);
    this.logger.log({ message: `${userId} asked to join group ${cmd.groupId}`, user: userId, group: cmd.groupId });
    return okReply(`asked to join group ${cmd.groupId}; waiting for the owner to accept`);
  }

  @MessagePattern(Cmd.LeaveGroup)
  @Replicated()
  leave(@Payload() cmd: LeaveGroupCmd, @Ctx() ctx: PeerContext): OkReply {
    const userId = ctx.requireUser();
    const outcome = this.groups.leave(userId, cmd.groupId);
    const owner = outcome.kind === 'left-owner' ? { newOwner: outcome.newOwner } : {};
    this.logger.log({
      message: `${userId}: ${describeLeave(cmd.groupId, outcome).replace(/\byour\b/, 'the')}`,
      user: userId,
      group: cmd.groupId,
      outcome: outcome.kind,
      ...owner,
    });
    return okReply(describeLeave(cmd.groupId, outcome));
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
    const owner = ctx.requireUser();
    this.groups.accept(owner, cmd.groupId, cmd.userId);
    this.logger.log({
      message: `${owner} accepted ${cmd.userId} into group ${cmd.groupId}`,
      user: owner,
      group: cmd.groupId,
      member: cmd.userId,
    });
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
