import { formatHostPort, HostPort } from '@app/protocol';

/** No tracker in the file accepted a connection (at start-up, before any tracker was in use). */
export class TrackerUnreachableError extends Error {
  override readonly name = 'TrackerUnreachableError';
  /**
   * `refusal`: why trackers that answered were unusable: a certificate other than the one expected, no TLS, or the
   * refusal of the last one that turned the connection down (e.g. too many connections).
   */
  constructor(
    readonly tried: readonly HostPort[],
    refusal?: string,
  ) {
    super(`no tracker reachable (tried ${tried.map(formatHostPort).join(', ')})${refusal ? `; ${refusal}` : ''}`);
  }
}

/** The connection closed (or was closed, or went silent) while a request waited for its reply. */
export class TrackerConnectionLostError extends Error {
  override readonly name = 'TrackerConnectionLostError';
  constructor(
    readonly tracker: HostPort,
    reason?: string,
  ) {
    super(`lost connection to tracker ${formatHostPort(tracker)}${reason ? ` (${reason})` : ''}`);
  }
}

/** The tracker in use went away and no tracker in the file answered during the failover window. */
export class TrackerFailoverError extends Error {
  override readonly name = 'TrackerFailoverError';
  /** `reason`: what made a tracker that answered unusable (a certificate other than its pin, no TLS). */
  constructor(
    readonly tried: readonly HostPort[],
    reason?: string,
  ) {
    super(
      `lost connection to every tracker (tried ${tried.map(formatHostPort).join(', ')})${reason ? `; ${reason}` : ''}`,
    );
  }
}

/** The tracker sent something that is not a reply; the connection is dropped. */
export class TrackerProtocolError extends Error {
  override readonly name = 'TrackerProtocolError';
}
