import * as crypto from 'node:crypto';
import { CapabilityVerifier } from './capability.verifier';
import { TestCapabilityIssuer, withByteFlipped } from './testing/capability.fixtures';

jest.mock('node:crypto', () => {
  const actual = jest.requireActual<typeof crypto>('node:crypto');
  return { ...actual, verify: jest.fn(actual.verify) };
});

describe(CapabilityVerifier.name, () => {
  const NOW = 1_800_000_000_000;
  const nowSeconds = NOW / 1000;
  let issuer: TestCapabilityIssuer;
  let verifier: CapabilityVerifier;
  let valid: string;

  beforeEach(() => {
    jest.mocked(crypto.verify).mockClear();
    issuer = new TestCapabilityIssuer();
    verifier = new CapabilityVerifier({ capabilitySkewMs: 60_000 });
    verifier.trust('alice', issuer.rawPublicKey);
    valid = issuer.issue({ expiresAt: nowSeconds + 3600 });
  });

  it('honours a capability signed with the trusted key for this seeder, and gives its claims', () => {
    expect(verifier.check(valid, NOW)).toEqual({
      fileHash: 'a'.repeat(40),
      groupId: 'g1',
      seederId: 'alice',
      downloaderId: 'bob',
      expiresAt: nowSeconds + 3600,
    });
  });

  it('refuses the capability with any one byte of it changed', () => {
    const length = Buffer.from(valid, 'base64url').length;
    for (let at = 0; at < length; at++) {
      for (const mask of [0x01, 0x80]) expect(verifier.check(withByteFlipped(valid, at, mask), NOW)).toBeUndefined();
    }
    expect(verifier.check(valid, NOW)).toBeDefined();
  });

  it('refuses the capability text with any one character changed', () => {
    for (let at = 0; at < valid.length; at++) {
      const other = valid[at] === 'A' ? 'B' : 'A';
      expect(verifier.check(valid.slice(0, at) + other + valid.slice(at + 1), NOW)).toBeUndefined();
    }
  });

  it('refuses a capability signed with another key', () => {
    expect(verifier.check(new TestCapabilityIssuer().issue({ expiresAt: nowSeconds + 3600 }), NOW)).toBeUndefined();
  });

  it('refuses a capability for another seeder', () => {
    expect(verifier.check(issuer.issue({ seederId: 'bob', expiresAt: nowSeconds + 3600 }), NOW)).toBeUndefined();
  });

  it('honours an expired capability for the allowed clock skew, and no longer', () => {
    const cap = issuer.issue({ expiresAt: nowSeconds });
    expect(verifier.check(cap, NOW - 1)).toBeDefined();
    expect(verifier.check(cap, NOW + 59_999)).toBeDefined();
    expect(verifier.check(cap, NOW + 60_000)).toBeUndefined();
    expect(verifier.check(cap, NOW + 3_600_000)).toBeUndefined();
  });

  it('with no skew allowed, refuses a capability from its expiry on', () => {
    const strict = new CapabilityVerifier({ capabilitySkewMs: 0 });
    strict.trust('alice', issuer.rawPublicKey);
    const cap = issuer.issue({ expiresAt: nowSeconds });
    expect(strict.check(cap, NOW - 1)).toBeDefined();
    expect(strict.check(cap, NOW)).toBeUndefined();
  });

  it('allows 60 s of skew by default', () => {
    const byDefault = new CapabilityVerifier({});
    byDefault.trust('alice', issuer.rawPublicKey);
    const cap = issuer.issue({ expiresAt: nowSeconds });
    expect(byDefault.check(cap, NOW + 59_999)).toBeDefined();
    expect(byDefault.check(cap, NOW + 60_000)).toBeUndefined();
  });

  it('honours nothing before trust, after forget, or without a key', () => {
    const fresh = new CapabilityVerifier({});
    expect(fresh.check(valid, NOW)).toBeUndefined();
    expect(verifier.check(valid, NOW)).toBeDefined();
    verifier.forget();
    expect(verifier.seederId).toBeUndefined();
    expect(verifier.check(valid, NOW)).toBeUndefined();
    verifier.trust('alice', undefined);
    expect(verifier.seederId).toBeUndefined();
    expect(verifier.check(valid, NOW)).toBeUndefined();
  });

  it('forgets what it verified when the trust changes', () => {
    expect(verifier.check(valid, NOW)).toBeDefined();
    verifier.trust('alice', new TestCapabilityIssuer().rawPublicKey);
    expect(verifier.check(valid, NOW)).toBeUndefined();
    verifier.trust('bob', issuer.rawPublicKey);
    expect(verifier.check(valid, NOW)).toBeUndefined();
  });

  it('checks a signature once per capability, not once per chunk', () => {
    for (let i = 0; i < 1000; i++) expect(verifier.check(valid, NOW)).toBeDefined();
    expect(crypto.verify).toHaveBeenCalledTimes(1);
  });

  it('keeps its cache bounded: past 4096 capabilities the oldest are checked afresh when they come again', () => {
    const many = Array.from({ length: 5000 }, (_, i) =>
      issuer.issue({ downloaderId: `d${i}`, expiresAt: nowSeconds + 3600 }),
    );
    for (const cap of many) expect(verifier.check(cap, NOW)).toBeDefined();
    jest.mocked(crypto.verify).mockClear();
    expect(verifier.check(many[4999], NOW)).toBeDefined();
    expect(crypto.verify).not.toHaveBeenCalled();
    expect(verifier.check(many[0], NOW)).toBeDefined();
    expect(crypto.verify).toHaveBeenCalledTimes(1);
  });
});
