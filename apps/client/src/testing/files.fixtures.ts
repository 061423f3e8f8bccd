import { okReply, Reply } from '@app/protocol';
import { ClientConfig } from '../config/client.config';
import { ClientConfigService } from '../config/client-config.service';
import { clientConfig } from './client-config.factory';

/** This client's own address in every files spec (the default of `clientConfig`). */
export const SELF = { host: '127.0.0.1', port: 7001 };
/** What the client sends as `my_port`: its port only; the tracker takes the host from the connection. */
export const MY_PORT = '7001';

/** What the fake tracker answers to one request; an Error makes `request` reject with it. */
export type TrackerAnswer = (line: string, continuation: readonly string[]) => Reply | Error;

/** Stands in for TrackerClient: `request` is a jest.fn answering with `answer` (default `OK 0 ok`). */
export function fakeTracker(answer: TrackerAnswer = () => okReply('ok')) {
  const request = jest.fn((line: string, continuation: readonly string[] = []): Promise<Reply> => {
    const reply = answer(line, continuation);
    return reply instanceof Error ? Promise.reject(reply) : Promise.resolve(reply);
  });
  return {
    request,
    /** Request lines sent so far, in order. */
    get lines(): string[] {
      return request.mock.calls.map(([line]) => line);
    },
  };
}
export type FakeTracker = ReturnType<typeof fakeTracker>;

/** A ClientConfigService already `set` to the test config (self 127.0.0.1:7001). */
export function configService(overrides: Partial<ClientConfig> = {}): ClientConfigService {
  const service = new ClientConfigService();
  service.set(clientConfig(overrides));
  return service;
}

/** Lets pending promise callbacks and I/O callbacks run. */
export const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));
