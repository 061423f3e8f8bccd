import { Command, ErrorCode, ProtocolError } from '@app/protocol';
import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Observable, tap } from 'rxjs';
import { DomainError } from '../common/domain.error';
import { SyncPayload } from '../transport/text-line.server';
import { TrackerMetrics } from './tracker.metrics';

/**
 * Counts every command a handler answers, by name and outcome, and times it. Names come from the parsed command
 * (a closed set), never from raw wire text; lines between trackers count as `sync`. A TRY_LATER answer (login
 * backoff, a full password queue) is also a refusal by a limit.
 */
@Injectable()
export class MetricsInterceptor implements NestInterceptor {
  constructor(private readonly metrics: TrackerMetrics) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const payload = context.switchToRpc().getData<Command | SyncPayload | undefined>();
    if (!payload || typeof payload !== 'object') return next.handle(); // transport events (a connection closed)
    const command = 'kind' in payload ? payload.kind : 'sync';
    const started = process.hrtime.bigint();
    let counted = false;
    const done = (outcome: string) => {
      if (counted) return;
      counted = true;
      this.metrics.commandDone(command, outcome, Number(process.hrtime.bigint() - started) / 1e9);
      if (outcome === ErrorCode.TryLater) this.metrics.refused(outcome);
    };
    return next.handle().pipe(
      tap({
        next: (value) => done(outcomeOf(value)),
        complete: () => done('ok'),
        error: (err: unknown) =>
          done(err instanceof DomainError || err instanceof ProtocolError ? err.code : ErrorCode.Internal),
      }),
    );
  }
}

/** `ok`, or the code of an error reply a handler returned instead of throwing. */
function outcomeOf(value: unknown): string {
  if (value && typeof value === 'object' && 'ok' in value && value.ok === false && 'code' in value) {
    return String(value.code);
  }
  return 'ok';
}
