import { ErrorCode, errReply } from '@app/protocol';
import { CallHandler, ExecutionContext } from '@nestjs/common';
import { lastValueFrom, of, throwError } from 'rxjs';
import { LoginFailedError, TryLaterError } from '../auth/auth.errors';
import { MetricsInterceptor } from './metrics.interceptor';
import { TrackerMetrics } from './tracker.metrics';

const rpc = (data: unknown) => ({ switchToRpc: () => ({ getData: () => data }) }) as unknown as ExecutionContext;
const handler = (outcome: 'ok' | Error | object): CallHandler => ({
  handle: () => (outcome instanceof Error ? throwError(() => outcome) : of(outcome === 'ok' ? 'done' : outcome)),
});

describe(MetricsInterceptor.name, () => {
  let metrics: TrackerMetrics;
  let commandDone: jest.SpyInstance;
  let refused: jest.SpyInstance;
  let interceptor: MetricsInterceptor;
  const run = (data: unknown, outcome: 'ok' | Error | object) =>
    lastValueFrom(interceptor.intercept(rpc(data), handler(outcome)), { defaultValue: undefined }).catch(
      () => undefined,
    );

  beforeEach(() => {
    metrics = new TrackerMetrics();
    commandDone = jest.spyOn(metrics, 'commandDone');
    refused = jest.spyOn(metrics, 'refused');
    interceptor = new MetricsInterceptor(metrics);
  });

  it('counts a command by its parsed name: ok, a thrown domain error, a returned error reply', async () => {
    await run({ kind: 'list_groups' }, 'ok');
    await run({ kind: 'login' }, new LoginFailedError());
    await run({ kind: 'join_group' }, errReply(ErrorCode.UnknownGroup, 'no such group'));
    expect(commandDone.mock.calls.map((c: unknown[]) => [c[0], c[1]])).toEqual([
      ['list_groups', 'ok'],
      ['login', ErrorCode.LoginFailed],
      ['join_group', ErrorCode.UnknownGroup],
    ]);
    expect(refused).not.toHaveBeenCalled();
  });

  it('counts lines between trackers as sync, an unexpected error as INTERNAL, and TRY_LATER as a refusal', async () => {
    await run({ name: 'op', args: [] }, new Error('disk full'));
    await run({ kind: 'login' }, new TryLaterError('too many failed logins', 4));
    expect(commandDone.mock.calls.map((c: unknown[]) => [c[0], c[1]])).toEqual([
      ['sync', ErrorCode.Internal],
      ['login', ErrorCode.TryLater],
    ]);
    expect(refused).toHaveBeenCalledWith(ErrorCode.TryLater);
  });

  it('leaves transport events (no payload) uncounted', async () => {
    await run(undefined, 'ok');
    expect(commandDone).not.toHaveBeenCalled();
  });
});
