/**
 * Download capabilities: what a tracker hands a member, in `seeder_file_paths`,
 * in place of each seeder's real path, and what the member sends back to that
 * seeder in `GET_CHUNK <chunk_index> <capability>`.
 *
 * A capability is the URL-safe base64 (RFC 4648 section 5, no padding) of
 *
 *     offset  bytes  field
 *     0       1      version, 0x01
 *     1       8      expiry, unix seconds, unsigned big-endian
 *     9       20     SHA-1 of the whole file (raw digest)
 *     29      1+g    group id: length byte g, then g bytes of UTF-8
 *     ..      1+s    seeder's user id: length byte s, then s bytes
 *     ..      1+d    downloader's user id: length byte d, then d bytes
 *     ..      64     Ed25519 signature over every byte before it
 *
 * so it holds no space, comma or `%`. Only the layout lives here (pure bytes);
 * signing and verifying belong to the apps, which hold keys and node:crypto.
 */

export const CAPABILITY_VERSION = 1;
export const CAPABILITY_SIGNATURE_BYTES = 64;
const HEADER_BYTES = 1 + 8 + 20;
const MAX_ID_BYTES = 255;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Longest capability text worth decoding (three 255-byte ids): anything longer is refused unread. */
export const MAX_CAPABILITY_CHARS = Math.ceil(((HEADER_BYTES + 3 * (1 + MAX_ID_BYTES) + 64) * 4) / 3);

/** What a capability grants: `downloaderId` may fetch the file `fileHash` of `groupId` from `seederId` until `expiresAt`. */
export interface CapabilityClaims {
  /** Lowercase hex SHA-1 of the whole file. */
  readonly fileHash: string;
  readonly groupId: string;
  readonly seederId: string;
  readonly downloaderId: string;
  /** Unix seconds; the capability is good until this moment (seeders allow some clock skew). */
  readonly expiresAt: number;
}

/** A capability taken apart: its claims, the signed bytes and the signature over them. */
export interface DecodedCapability {
  readonly claims: CapabilityClaims;
  readonly signed: Buffer;
  readonly signature: Buffer;
}

const SHA1_HEX = /^[0-9a-f]{40}$/;

/** The bytes a tracker signs for `claims`; throws RangeError on claims that cannot be encoded. */
export function capabilitySignedBytes(claims: CapabilityClaims): Buffer {
  if (!SHA1_HEX.test(claims.fileHash)) throw new RangeError('fileHash must be a lowercase hex SHA-1');
  if (!Number.isSafeInteger(claims.expiresAt) || claims.expiresAt < 0) {
    throw new RangeError(`bad expiry ${claims.expiresAt}`);
  }
  const ids = [claims.groupId, claims.seederId, claims.downloaderId].map((id) => Buffer.from(id, 'utf8'));
  for (const id of ids) {
    if (id.length < 1 || id.length > MAX_ID_BYTES) throw new RangeError(`an id must be 1-${MAX_ID_BYTES} bytes`);
  }
  const out = Buffer.alloc(HEADER_BYTES + ids.reduce((n, id) => n + 1 + id.length, 0));
  out[0] = CAPABILITY_VERSION;
  out.writeBigUInt64BE(BigInt(claims.expiresAt), 1);
  Buffer.from(claims.fileHash, 'hex').copy(out, 9);
  let at = HEADER_BYTES;
  for (const id of ids) {
    out[at++] = id.length;
    at += id.copy(out, at);
  }
  return out;
}

/** The capability text: signed bytes and signature, URL-safe base64 without padding. */
export function formatCapability(signed: Buffer, signature: Buffer): string {
  if (signature.length !== CAPABILITY_SIGNATURE_BYTES) throw new RangeError('an Ed25519 signature is 64 bytes');
  return Buffer.concat([signed, signature]).toString('base64url');
}

/**
 * Takes a capability text apart without checking its signature; undefined for
 * anything that is not exactly one well-formed capability (wrong alphabet, a
 * non-canonical base64 ending, an unknown version, lengths that do not add up,
 * ids that are not UTF-8). Never throws.
 */
export function decodeCapability(text: string): DecodedCapability | undefined {
  if (text.length > MAX_CAPABILITY_CHARS || !BASE64URL.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  // one text per byte string: the unused low bits of the last character must be zero
  if (bytes.toString('base64url') !== text) return undefined;
  if (bytes.length < HEADER_BYTES + 3 * 2 + CAPABILITY_SIGNATURE_BYTES || bytes[0] !== CAPABILITY_VERSION) {
    return undefined;
  }
  const expiry = bytes.readBigUInt64BE(1);
  if (expiry > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const end = bytes.length - CAPABILITY_SIGNATURE_BYTES;
  const ids: string[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < 3; i++) {
    const length = at < end ? bytes[at] : 0;
    if (length === 0 || at + 1 + length > end) return undefined;
    const raw = bytes.subarray(at + 1, at + 1 + length);
    const id = raw.toString('utf8');
    if (!Buffer.from(id, 'utf8').equals(raw)) return undefined;
    ids.push(id);
    at += 1 + length;
  }
  if (at !== end) return undefined;
  return {
    claims: {
      fileHash: bytes.toString('hex', 9, HEADER_BYTES),
      groupId: ids[0],
      seederId: ids[1],
      downloaderId: ids[2],
      expiresAt: Number(expiry),
    },
    signed: bytes.subarray(0, end),
    signature: bytes.subarray(end),
  };
}

/** The expiry (unix seconds) of a capability, read without checking it; undefined when it is none. */
export function capabilityExpiry(text: string): number | undefined {
  return decodeCapability(text)?.claims.expiresAt;
}

/** Where a raw 32-byte Ed25519 public key sits in its SPKI DER encoding. */
export const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Where a raw 32-byte Ed25519 seed sits in its PKCS#8 DER encoding. */
export const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The body line of a `login` or `resume` reply that tells the client the
 * public key capabilities are signed with: `capability_key:<base64url of the
 * raw 32-byte Ed25519 public key>`.
 */
export const CAPABILITY_KEY_FIELD = 'capability_key';

export function formatCapabilityKeyLine(rawPublicKey: Buffer): string {
  return `${CAPABILITY_KEY_FIELD}:${rawPublicKey.toString('base64url')}`;
}

/** The raw 32-byte public key of a `capability_key:` line among `lines`; undefined when there is none. */
export function capabilityKeyOf(lines: readonly string[]): Buffer | undefined {
  for (const line of lines) {
    const m = /^capability_key:([A-Za-z0-9_-]{43})$/.exec(line);
    if (!m) continue;
    const key = Buffer.from(m[1], 'base64url');
    if (key.length === 32 && key.toString('base64url') === m[1]) return key;
  }
  return undefined;
}
