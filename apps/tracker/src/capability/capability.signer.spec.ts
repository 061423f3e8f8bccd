import { decodeCapability, ED25519_SPKI_PREFIX } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { createPublicKey, verify } from 'node:crypto';
import { CLUSTER_KEY } from '../sync/sync.tokens';
import { CapabilitySigner, deriveCapabilityKeys } from './capability.signer';
import { CAPABILITY_CLOCK, CAPABILITY_OPTIONS } from './capability.tokens';

const NETWORK_KEY = Buffer.alloc(32, 7);
const grant = { fileHash: 'A'.repeat(40), groupId: 'team', seederId: 'alice', downloaderId: 'bob' };

const publicKeyObject = (raw: Buffer) =>
  createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });

describe(CapabilitySigner.name, () => {
  let now: number;
  let signer: CapabilitySigner;

  beforeEach(async () => {
    now = 1_800_000_000_250;
    const moduleRef = await Test.createTestingModule({
      providers: [
        CapabilitySigner,
        { provide: CLUSTER_KEY, useValue: NETWORK_KEY },
        { provide: CAPABILITY_OPTIONS, useValue: { ttlMs: 2_500 } },
        { provide: CAPABILITY_CLOCK, useValue: () => now },
      ],
    }).compile();
    signer = moduleRef.get(CapabilitySigner);
  });

  it('issues a capability with the grant and an expiry TTL from now, rounded up to the second', () => {
    const decoded = decodeCapability(signer.issue(grant));
    expect(decoded?.claims).toEqual({ ...grant, fileHash: 'a'.repeat(40), expiresAt: 1_800_000_003 });
    now += 10_000;
    expect(decodeCapability(signer.issue(grant))?.claims.expiresAt).toBe(1_800_000_013);
  });

  it('hands out the same capability for the same grant within a tenth of the lifetime, then a fresh one', () => {
    const first = signer.issue(grant);
    now += 200; // within 250 ms, a tenth of 2.5 s
    expect(signer.issue(grant)).toBe(first);
    expect(signer.issue({ ...grant, downloaderId: 'carol' })).not.toBe(first);
    expect(signer.issue({ ...grant, seederId: 'bob' })).not.toBe(first);
    now += 600; // 800 ms after the first: 1.95 s left, under nine tenths of 2.5 s
    const second = signer.issue(grant);
    expect(second).not.toBe(first);
    expect(decodeCapability(second)?.claims.expiresAt).toBe(1_800_000_004);
  });

  it('signs it so that its public key verifies it offline', () => {
    const decoded = decodeCapability(signer.issue(grant))!;
    expect(verify(null, decoded.signed, publicKeyObject(signer.publicKey), decoded.signature)).toBe(true);
    const tampered = Buffer.from(decoded.signed);
    tampered[tampered.length - 1] ^= 1;
    expect(verify(null, tampered, publicKeyObject(signer.publicKey), decoded.signature)).toBe(false);
  });

  it('derives one key pair from the network key: every tracker of the network signs alike', () => {
    const other = new CapabilitySigner(Buffer.from(NETWORK_KEY), { ttlMs: 2_500 }, () => now);
    expect(other.publicKey.equals(signer.publicKey)).toBe(true);
    expect(other.issue(grant)).toBe(signer.issue(grant));
    expect(signer.publicKeyLine).toBe(`capability_key:${signer.publicKey.toString('base64url')}`);
  });

  it('derives another key from another network key, and it is not the network key', () => {
    const other = deriveCapabilityKeys(Buffer.alloc(32, 8)).rawPublicKey;
    expect(other).toHaveLength(32);
    expect(other.equals(signer.publicKey)).toBe(false);
    expect(signer.publicKey.equals(NETWORK_KEY)).toBe(false);
  });

  it('matches the documented derivation: HKDF-SHA256 seed, PKCS#8 Ed25519 key', () => {
    // pinned so that a change of the derivation, which would split a network mid-upgrade, is noticed
    expect(deriveCapabilityKeys(NETWORK_KEY).rawPublicKey.toString('hex')).toBe(signer.publicKey.toString('hex'));
    // the same value from Python's `cryptography` (HKDF(SHA256, salt=None, info) -> Ed25519PrivateKey.from_private_bytes)
    expect(signer.publicKey.toString('hex')).toBe('c1acdb89623d98828d4e9f23e0f65dd742acd307e5f7bab8dea8e2f308bd2b9e');
  });
});
