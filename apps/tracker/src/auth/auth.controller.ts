import { Cmd, CreateUserCmd, LoginCmd, okReply, OkReply, ResumeCmd } from '@app/protocol';
import { Controller, Logger, UseGuards } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { CapabilitySigner } from '../capability/capability.signer';
import { Replicated } from '../sync/replicated.decorator';
import { PeerContext } from '../transport/peer.context';
import { TransportEvent } from '../transport/transport.events';
import { AuthService } from './auth.service';
import { RequireTlsGuard } from './require-tls.guard';

@Controller()
export class AuthController {
  private readonly logger = new Logger(AuthController.name);

  constructor(
    private readonly auth: AuthService,
    private readonly capabilities: CapabilitySigner,
  ) {}

  @MessagePattern(Cmd.CreateUser)
  @UseGuards(RequireTlsGuard)
  @Replicated()
  async createUser(@Payload() cmd: CreateUserCmd, @Ctx() ctx: PeerContext): Promise<OkReply> {
    await this.auth.createUser(cmd.userId, cmd.password, ctx.remoteHost);
    this.logger.log({ message: `user ${cmd.userId} created`, user: cmd.userId, address: ctx.remoteAddress });
    return okReply(`user ${cmd.userId} created`);
  }

  /** The reply carries the session token and the public key capabilities are signed with (the same on every tracker). */
  @MessagePattern(Cmd.Login)
  @UseGuards(RequireTlsGuard)
  @Replicated()
  async login(@Payload() cmd: LoginCmd, @Ctx() ctx: PeerContext): Promise<OkReply> {
    const token = await this.auth.login(ctx, cmd.userId, cmd.password);
    this.logger.log({ message: `${cmd.userId} logged in`, user: cmd.userId, address: ctx.remoteAddress });
    // the token lines are extensions: the seed form shows the message only
    return okReply(
      `logged in as ${cmd.userId}`,
      [`session_token:${token}`, this.capabilities.publicKeyLine],
      'message',
    );
  }

  @MessagePattern(Cmd.Resume)
  @UseGuards(RequireTlsGuard)
  resume(@Payload() cmd: ResumeCmd, @Ctx() ctx: PeerContext): OkReply {
    const userId = this.auth.resume(ctx, cmd.sessionToken);
    this.logger.log({ message: `${userId} resumed a session`, user: userId, address: ctx.remoteAddress });
    return okReply(`resumed the session of ${userId}`);
  }

  @MessagePattern(Cmd.Logout)
  @Replicated()
  logout(@Ctx() ctx: PeerContext): OkReply {
    const userId = ctx.requireUser();
    this.auth.logout(ctx);
    this.logger.log({ message: `${userId} logged out`, user: userId, address: ctx.remoteAddress });
    return okReply(`${userId} logged out`);
  }

  @EventPattern(TransportEvent.PeerClosed)
  closed(@Ctx() ctx: PeerContext): void {
    const userId = ctx.user;
    this.auth.endSession(ctx);
    if (userId !== undefined) {
      this.logger.log({
        message: `session of ${userId} ended: connection closed`,
        user: userId,
        address: ctx.remoteAddress,
      });
    }
  }
}
