/**
 * Why a request to a seeder failed:
 * - `connect`: no usable connection could be made (refused, unreachable, timed out, or the
 *   seeder answered `ERR <code>` before any request, e.g. `ERR BUSY`);
 * - `timeout`: requests were outstanding and no byte arrived for the inactivity timeout;
 * - `closed`: the connection ended (either side) before the answer;
 * - `protocol`: the seeder sent something that is not the answer asked for;
 * - `refused`: the seeder answered `ERR <code> <message>` for this one request;
 * - `failed`: a seed-form seeder's connection for one chunk ended before all of
 *   its bytes came, or sent nothing for the inactivity timeout (the seed form's
 *   only way to refuse is to close without a byte);
 * - `identity`: over TLS, the seeder presented a certificate other than the one
 *   its tracker lists (nothing was sent to it past the handshake).
 */
export type PeerErrorKind = 'connect' | 'timeout' | 'closed' | 'protocol' | 'refused' | 'failed' | 'identity';

export class PeerError extends Error {
  override readonly name = 'PeerError';
  constructor(
    readonly kind: PeerErrorKind,
    message: string,
    /** The remote error code, for `refused` (and `connect` when the seeder sent one). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A download that did not complete; `message` is the reason shown to the user. */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
}
