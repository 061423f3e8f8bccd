import { AsyncLocalStorage } from 'node:async_hooks';

/** What the transport knows of the request being handled, for code far from the wire. */
export interface RequestContext {
  /** The client's `#id` for this request ('' when it gave none). */
  readonly requestId: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

export const currentRequestId = (): string => requestContext.getStore()?.requestId ?? '';
