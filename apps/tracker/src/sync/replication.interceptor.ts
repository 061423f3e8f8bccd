import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Cmd, CommandName, okReply } from '@app/protocol';
import { from, Observable, of, switchMap, tap } from 'rxjs';
import { currentRequestId } from '../common/request-context';
import { PeerContext } from '../transport/peer.context';
import { SyncService } from './sync.service';

/** Commands that change replicated state: a retried one (same `#id`) must not be applied twice. */
const CHANGES = new Set<CommandName>([
  Cmd.CreateUser,
  Cmd.CreateGroup,
  Cmd.JoinGroup,
  Cmd.LeaveGroup,
  Cmd.AcceptRequest,
  Cmd.UploadFile,
  Cmd.NewSeeder,
  Cmd.StopShare,
]);

/** Request ids a connection used for changes before it logged in, at most this many (the oldest go first). */
const MAX_ANONYMOUS_IDS = 256;

/**
 * Around every client request that changes state (see `@Replicated()`): waits until start-up catch-up is over, answers
 * a retried change that was applied already instead of applying it again, and
 * replies only once the other trackers hold the changes made (or the
 * replication wait runs out), so that an acknowledged change survives the
 * death of this tracker.
 *
 * A request id belongs to whoever sent it: to the logged-in user (so a retry
 * on another tracker after a failover is still recognised), or, before login,
 * to the connection alone. Nobody else's id ever makes a change "already applied".
 */
@Injectable()
export class ReplicationInterceptor implements NestInterceptor {
  /** Ids of changes each connection made before login. */
  private readonly anonymousIds = new WeakMap<PeerContext, Set<string>>();

  constructor(private readonly sync: SyncService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const ctx = context.switchToRpc().getContext<PeerContext>();
    const command = context.switchToRpc().getData<{ kind?: CommandName } | undefined>();
    // events the transport raises itself (a closed connection) and other trackers' lines pass straight through
    const kind = command?.kind;
    if (ctx.trackerNumber !== undefined || kind === undefined) return next.handle();
    const requestId = currentRequestId();
    return from(this.sync.ready).pipe(
      switchMap(() => {
        const user = ctx.user;
        if (CHANGES.has(kind) && this.applied(ctx, user, requestId)) {
          return of(okReply(`done (request #${requestId} had already been applied)`));
        }
        return next.handle().pipe(
          tap(() => {
            if (CHANGES.has(kind) && user === undefined && requestId !== '') this.remember(ctx, requestId);
          }),
          switchMap((result: unknown) => from(this.sync.flush().then(() => result))),
        );
      }),
    );
  }

  private applied(ctx: PeerContext, user: string | undefined, requestId: string): boolean {
    if (requestId === '') return false;
    return user === undefined
      ? (this.anonymousIds.get(ctx)?.has(requestId) ?? false)
      : this.sync.hasRequest(requestId, user);
  }

  private remember(ctx: PeerContext, requestId: string): void {
    let ids = this.anonymousIds.get(ctx);
    if (!ids) this.anonymousIds.set(ctx, (ids = new Set()));
    ids.add(requestId);
    if (ids.size > MAX_ANONYMOUS_IDS) ids.delete(ids.values().next().value!);
  }
}
