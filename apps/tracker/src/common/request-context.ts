import { AsyncLocalStorage } from 'node:async_hooks';

/** What the transport knows of the request being handled, for code far from the wire. */
export interface RequestContext {
  /** The client's `#id` for this request ('' when it gave none). */
  readonly requestId: string;
  /** The id log lines carry: the client's `#id`, else one the transport assigns (`c<connection>-<n>`). */
  readonly logId?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

export const currentRequestId = (): string => requestContext.getStore()?.requestId ?? '';

/**
 * The request id of an op that is not the change of a logged-in user's
 * request: a session opened by `login` or `resume` (whose ids belong to the
 * connection, which had no user yet) or seen when a connection closed. Such an
 * op never makes a later request of that user with the same id "already applied".
 */
export const NO_REQUEST = '';
