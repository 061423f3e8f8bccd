import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, randomBytes, sign } from 'node:crypto';

/**
 * A self-signed X.509 v3 certificate for an ECDSA P-256 key, written out in
 * DER by hand: Node can read certificates (`X509Certificate`) but not make
 * them, and a certificate here is only a signed public key with a name (peers
 * trust it by its fingerprint, never by a chain), so the few fields it needs
 * are simpler to write than to take a dependency for.
 */
export interface KeyAndCertificate {
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** X.509 PEM. */
  readonly certPem: string;
}

/** Makes a new P-256 key pair and a certificate for it named `commonName`, valid from an hour ago forever. */
export function createSelfSigned(commonName: string, now = new Date()): KeyAndCertificate {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { keyPem: pem(privateKey), certPem: certificateFor(privateKey, commonName, now) };
}

/** A self-signed certificate for an existing EC private key (PEM or KeyObject). */
export function certificateFor(key: KeyObject | string, commonName: string, now = new Date()): string {
  const privateKey = typeof key === 'string' ? createPrivateKey(key) : key;
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const name = seq(set(seq(OID_COMMON_NAME, tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const notBefore = new Date(now.getTime() - 3_600_000);
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // [0] EXPLICIT version: v3
    integer(serialNumber()),
    seq(OID_ECDSA_WITH_SHA256),
    name,
    seq(utcTime(notBefore), tlv(0x18, Buffer.from('99991231235959Z', 'latin1'))), // RFC 5280: no well-defined expiry
    name,
    spki,
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const der = seq(tbs, seq(OID_ECDSA_WITH_SHA256), tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const base64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${base64.replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

function pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** OID 1.2.840.10045.4.3.2 */
const OID_ECDSA_WITH_SHA256 = Buffer.from('06082a8648ce3d040302', 'hex');
/** OID 2.5.4.3 */
const OID_COMMON_NAME = Buffer.from('0603550403', 'hex');

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else if (n < 0x100) length = Buffer.from([0x81, n]);
  else if (n < 0x10000) length = Buffer.from([0x82, n >> 8, n & 0xff]);
  else throw new RangeError('DER value too long');
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));

/** A non-negative INTEGER: a leading zero byte when the high bit is set. */
function integer(value: Buffer): Buffer {
  return tlv(0x02, value[0] & 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value);
}

/** 16 random bytes, first byte nonzero and below 0x80: a positive serial of at most 20 bytes, as RFC 5280 asks. */
function serialNumber(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01;
  return serial;
}

function utcTime(date: Date): Buffer {
  const two = (n: number) => String(n).padStart(2, '0');
  const text =
    two(date.getUTCFullYear() % 100) +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    'Z';
  return tlv(0x17, Buffer.from(text, 'latin1'));
}
