import { createSelfSigned, fingerprintOf, Identity } from '@app/tls';

/** A TLS identity held in memory only (no files): for transport tests that need a tracker's or a client's. */
export function testIdentity(commonName: string): Identity {
  const { keyPem, certPem } = createSelfSigned(commonName);
  return { keyPem, certPem, fingerprint: fingerprintOf(certPem), keyFile: '', certFile: '', created: true };
}
