/** Where the expected fingerprint came from: a pin in tracker_info.txt, the known_trackers file, or the tracker. */
export type FingerprintSource = 'pinned' | 'known' | 'listed';

/**
 * The peer presented a certificate other than the one expected: nothing was
 * sent to it past the TLS handshake. The message says who, both fingerprints
 * and what to do if the change is genuine.
 */
export class FingerprintMismatchError extends Error {
  override readonly name = 'FingerprintMismatchError';

  constructor(
    message: string,
    readonly peer: string,
    readonly expected: string,
    readonly actual: string,
    readonly source: FingerprintSource,
  ) {
    super(message);
  }
}

/** The peer did not agree to STARTTLS (a seed-form or older server answers `error: unknown command ...`). */
export class StartTlsRefusedError extends Error {
  override readonly name = 'StartTlsRefusedError';

  /** `answer`: the line the peer sent instead of `OK 0 STARTTLS` (escape before showing), '' when it closed. */
  constructor(
    message: string,
    readonly answer: string,
  ) {
    super(message);
  }
}

/** The TLS handshake failed or did not finish in time (`timedOut`). */
export class TlsHandshakeError extends Error {
  override readonly name = 'TlsHandshakeError';

  constructor(
    message: string,
    readonly timedOut = false,
  ) {
    super(message);
  }
}

/** No TCP connection was made for TLS: refused, unreachable, or none within the time allowed. */
export class TlsConnectError extends Error {
  override readonly name = 'TlsConnectError';
}
