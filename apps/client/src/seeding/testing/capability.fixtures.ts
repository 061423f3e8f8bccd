import { CapabilityClaims, capabilitySignedBytes, formatCapability } from '@app/protocol';
import { generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import { SharedFile } from '../shared-file';

/** Stands in for the trackers: an Ed25519 key pair of its own that signs capabilities as they do. */
export class TestCapabilityIssuer {
  private readonly privateKey: KeyObject;
  /** Raw 32-byte public key, as a `capability_key:` line carries it. */
  readonly rawPublicKey: Buffer;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    this.rawPublicKey = spki.subarray(spki.length - 32);
  }

  /** A capability with these claims (defaults: bob may fetch a file of g1 from alice for an hour). */
  issue(claims: Partial<CapabilityClaims> = {}): string {
    const signed = capabilitySignedBytes({
      fileHash: 'a'.repeat(40),
      groupId: 'g1',
      seederId: 'alice',
      downloaderId: 'bob',
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
      ...claims,
    });
    return formatCapability(signed, sign(null, signed, this.privateKey));
  }

  /** A capability for `share` as its seeder's tracker would issue it to bob. */
  for(share: Pick<SharedFile, 'fileHash' | 'groupId' | 'userId'>, claims: Partial<CapabilityClaims> = {}): string {
    return this.issue({ fileHash: share.fileHash, groupId: share.groupId, seederId: share.userId, ...claims });
  }
}

/** `text` with byte `at` of its decoded form changed, written back canonically. */
export function withByteFlipped(text: string, at: number, mask = 0x01): string {
  const bytes = Buffer.from(text, 'base64url');
  bytes[at] ^= mask;
  return bytes.toString('base64url');
}
