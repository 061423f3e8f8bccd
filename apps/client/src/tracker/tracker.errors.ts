import { formatHostPort, HostPort } from '@app/protocol';

/** No tracker in the file accepted a connection. */
export class TrackerUnreachableError extends Error {
  override readonly name = 'TrackerUnreachableError';
  constructor(readonly tried: readonly HostPort[]) {
    super(`no tracker reachable (tried ${tried.map(formatHostPort).join(', ')})`);
  }
}

/** The connection closed (or was closed) while a request waited for its reply. */
export class TrackerConnectionLostError extends Error {
  override readonly name = 'TrackerConnectionLostError';
  constructor(readonly tracker: HostPort) {
    super(`lost connection to tracker ${formatHostPort(tracker)}`);
  }
}

/** The tracker sent something that is not a reply; the connection is dropped. */
export class TrackerProtocolError extends Error {
  override readonly name = 'TrackerProtocolError';
}
