import { fingerprintFromHex } from '@app/protocol';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { createSelfSigned } from './self-signed';

/** The private key of an identity, in its directory; created `0600`. */
export const IDENTITY_KEY_FILE = 'identity.key';
/** The self-signed certificate of an identity, in its directory. */
export const IDENTITY_CERT_FILE = 'identity.crt';

/**
 * Who a tracker or client is on the network: a P-256 key pair and a
 * self-signed certificate for it, named by the certificate's SHA-256
 * fingerprint. It is made once, on first start, and kept in the data
 * directory; copying the two files keeps the fingerprint (moving a tracker to
 * another machine without breaking its pins).
 */
export interface Identity {
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** X.509 PEM. */
  readonly certPem: string;
  /** `sha256:<64 hex>` of the certificate's DER bytes. */
  readonly fingerprint: string;
  readonly keyFile: string;
  readonly certFile: string;
  /** True when this start made it (the files did not exist). */
  readonly created: boolean;
}

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

/** The fingerprint of a certificate given as DER bytes or PEM text. */
export function fingerprintOf(cert: Buffer | string): string {
  const der = typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return fingerprintFromHex(createHash('sha256').update(der).digest('hex'));
}

/**
 * Loads the identity kept in `dir`, or makes one there (the directory is
 * created `0700` if missing) with `commonName` in its certificate. Refuses,
 * with an IdentityError naming the file, a key that group or others may read
 * or write, a key without its certificate (or the other way round), and a
 * certificate that is not for the key: an identity that others pinned is never
 * silently replaced.
 */
export function loadOrCreateIdentity(dir: string, commonName: string): Identity {
  try {
    return loadOrCreate(dir, commonName);
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    // a directory that cannot be made, read or written (a file in the way, no permission, a full disk)
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err;
    throw new IdentityError(`cannot keep an identity in ${dir}: ${(err as Error).message}`);
  }
}

function loadOrCreate(dir: string, commonName: string): Identity {
  const keyFile = join(dir, IDENTITY_KEY_FILE);
  const certFile = join(dir, IDENTITY_CERT_FILE);
  const hasKey = exists(keyFile);
  const hasCert = exists(certFile);
  if (!hasKey && !hasCert) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const made = createSelfSigned(commonName);
    // the certificate first: a key without its certificate is refused, so a crash in between is seen, not hidden
    writeNew(certFile, made.certPem, 0o644);
    writeNew(keyFile, made.keyPem, 0o600);
    return { ...made, fingerprint: fingerprintOf(made.certPem), keyFile, certFile, created: true };
  }
  if (!hasKey) throw new IdentityError(`${certFile} exists but ${keyFile} does not: restore the key or remove both`);
  if (!hasCert)
    throw new IdentityError(`${keyFile} exists but ${certFile} does not: restore the certificate or remove both`);
  const mode = statSync(keyFile).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new IdentityError(
      `${keyFile} may be read or written by others (mode ${mode.toString(8).padStart(3, '0')}): run chmod 600 ${keyFile}`,
    );
  }
  const keyPem = readFileSync(keyFile, 'utf8');
  const certPem = readFileSync(certFile, 'utf8');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new IdentityError(`${certFile} is not a certificate: ${(err as Error).message}`);
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) {
      throw new IdentityError(`${certFile} is not the certificate of ${keyFile}`);
    }
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw new IdentityError(`${keyFile} is not a private key: ${(err as Error).message}`);
  }
  return { keyPem, certPem, fingerprint: fingerprintOf(cert.raw), keyFile, certFile, created: false };
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Writes `text` to a new file with `mode`, through a temporary file renamed into place once synced. */
function writeNew(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}
