/**
 * Transport encryption (docs/PROTOCOL.md 8). A client, downloader or dialing
 * tracker that wants TLS sends this exact line as the very first line of a
 * connection, before the HELLO, and waits for its answer:
 *
 *     STARTTLS
 *     OK 0 STARTTLS
 *
 * then both sides run a TLS 1.3 handshake on the same TCP connection, and
 * everything after it (HELLO, requests, chunks, sync lines) travels inside
 * TLS. Nothing may follow the `STARTTLS` line before the answer: a server that
 * finds bytes after it closes the connection (they were sent in clear and could
 * have been injected). A seed-form peer never sends it and so never meets TLS.
 */
export const STARTTLS = 'STARTTLS';
export const STARTTLS_LINE = STARTTLS;
export const STARTTLS_REPLY = `OK 0 ${STARTTLS}`;
/** The first bytes of a connection that asks for TLS (for a server that must answer before a whole line). */
export const STARTTLS_START = Buffer.from(`${STARTTLS}\n`, 'latin1');
export const STARTTLS_START_CRLF = Buffer.from(`${STARTTLS}\r\n`, 'latin1');

/**
 * Every certificate is named by the SHA-256 of its DER bytes, written
 * `sha256:` and 64 lowercase hex digits (the form printed at start-up, kept in
 * `tracker_info.txt`, `known_trackers` and the metadata lines).
 */
export const FINGERPRINT_PREFIX = 'sha256:';
const FINGERPRINT_RE = /^sha256:([0-9a-f]{64})$/;

export const isFingerprint = (text: string): boolean => FINGERPRINT_RE.test(text);

/**
 * A fingerprint as a user may write it: `sha256:` then the 64 hex digits in either case, with or without `:`
 * between the bytes (as `openssl x509 -fingerprint -sha256` prints them). Undefined when it is not one.
 */
export function parseFingerprint(text: string): string | undefined {
  const m = /^sha256:((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})$/i.exec(text.trim());
  if (!m) return undefined;
  const hex = m[1].replace(/:/g, '').toLowerCase();
  return hex.length === 64 ? `${FINGERPRINT_PREFIX}${hex}` : undefined;
}

/** Fingerprint of a certificate's DER bytes, given their SHA-256 as hex. */
export const fingerprintFromHex = (sha256Hex: string): string => `${FINGERPRINT_PREFIX}${sha256Hex.toLowerCase()}`;

/** The item of `seeder_fingerprints:` / `partial_seeder_fingerprints:` for a seeder that speaks no TLS. */
export const NO_FINGERPRINT = '-';
