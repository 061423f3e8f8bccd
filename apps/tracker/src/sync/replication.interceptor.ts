import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Cmd, CommandName, okReply } from '@app/protocol';
import { from, Observable, of, switchMap } from 'rxjs';
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

/**
 * Around every client request that changes state (see `@Replicated()`): waits until start-up catch-up is over, answers
 * a retried change that was applied already instead of applying it again, and
 * replies only once the other trackers hold the changes made (or the
 * replication wait runs out), so that an acknowledged change survives the
 * death of this tracker.
 */
@Injectable()
export class ReplicationInterceptor implements NestInterceptor {
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
        if (CHANGES.has(kind) && this.sync.hasRequest(requestId)) {
          return of(okReply(`done (request #${requestId} had already been applied)`));
        }
        return next.handle().pipe(switchMap((result: unknown) => from(this.sync.flush().then(() => result))));
      }),
    );
  }
}
