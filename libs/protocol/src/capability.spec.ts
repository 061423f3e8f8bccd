import fc from 'fast-check';
import {
  CAPABILITY_SIGNATURE_BYTES,
  CapabilityClaims,
  capabilityExpiry,
  capabilityKeyOf,
  capabilitySignedBytes,
  decodeCapability,
  formatCapability,
  formatCapabilityKeyLine,
  MAX_CAPABILITY_CHARS,
} from './capability';

const claims: CapabilityClaims = {
  fileHash: '0123456789abcdef0123456789abcdef01234567',
  groupId: 'team',
  seederId: 'alice',
  downloaderId: 'bob',
  expiresAt: 1_764_140_000,
};
const signature = Buffer.alloc(CAPABILITY_SIGNATURE_BYTES, 0xab);

describe('capability layout', () => {
  it('lays the claims out byte for byte as documented', () => {
    const signed = capabilitySignedBytes(claims);
    expect(signed.toString('hex')).toBe(
      '01' + // version
        '000000006926a3e0' + // expiry 1764140000, u64 big-endian
        claims.fileHash +
        '04' +
        Buffer.from('team').toString('hex') +
        '05' +
        Buffer.from('alice').toString('hex') +
        '03' +
        Buffer.from('bob').toString('hex'),
    );
  });

  it('round-trips through its text, which holds no space, comma or %', () => {
    const signed = capabilitySignedBytes(claims);
    const text = formatCapability(signed, signature);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    const decoded = decodeCapability(text);
    expect(decoded?.claims).toEqual(claims);
    expect(decoded?.signed.equals(signed)).toBe(true);
    expect(decoded?.signature.equals(signature)).toBe(true);
    expect(capabilityExpiry(text)).toBe(claims.expiresAt);
  });

  it('round-trips any ids and expiry', () => {
    const id = fc
      .string({ minLength: 1, maxLength: 40 })
      .filter((s) => Buffer.from(s, 'utf8').toString('utf8') === s && Buffer.byteLength(s) <= 255);
    fc.assert(
      fc.property(
        fc.record({
          fileHash: fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b).toString('hex')),
          groupId: id,
          seederId: id,
          downloaderId: id,
          expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        }),
        (c) => {
          const text = formatCapability(capabilitySignedBytes(c), signature);
          expect(/^[A-Za-z0-9_-]+$/.test(text)).toBe(true);
          expect(decodeCapability(text)?.claims).toEqual(c);
        },
      ),
    );
  });

  it('refuses claims it cannot encode', () => {
    expect(() => capabilitySignedBytes({ ...claims, fileHash: 'ABC' })).toThrow(RangeError);
    expect(() => capabilitySignedBytes({ ...claims, groupId: '' })).toThrow(RangeError);
    expect(() => capabilitySignedBytes({ ...claims, seederId: 'x'.repeat(256) })).toThrow(RangeError);
    expect(() => capabilitySignedBytes({ ...claims, expiresAt: -1 })).toThrow(RangeError);
    expect(() => formatCapability(capabilitySignedBytes(claims), Buffer.alloc(63))).toThrow(RangeError);
  });

  describe('decoding', () => {
    const good = formatCapability(capabilitySignedBytes(claims), signature);
    const bytes = Buffer.from(good, 'base64url');
    const text = (b: Buffer) => b.toString('base64url');

    it.each<[string, string]>([
      ['an empty string', ''],
      ['a path', '/home/alice/report.pdf'],
      ['a character of standard base64', `+${good.slice(1)}`],
      ['padding', `${good}==`],
      ['a space', `${good.slice(0, 10)} ${good.slice(10)}`],
      // 109 bytes: the last character carries 4 unused bits
      [
        'a non-canonical last character',
        nonCanonical(formatCapability(capabilitySignedBytes({ ...claims, groupId: 'teams' }), signature)),
      ],
      ['another version', text(Buffer.concat([Buffer.from([2]), bytes.subarray(1)]))],
      ['a byte too many', text(Buffer.concat([bytes, Buffer.from([0])]))],
      ['a byte too few', text(bytes.subarray(0, bytes.length - 1))],
      ['no signature', text(bytes.subarray(0, bytes.length - CAPABILITY_SIGNATURE_BYTES))],
      ['an id length running past the end', text(withByte(bytes, 29, 200))],
      ['an empty id', text(withByte(bytes, 29, 0))],
      ['an expiry past 2^53', text(withByte(bytes, 1, 0xff))],
      ['ids that are not UTF-8', text(withByte(bytes, 30, 0xff))],
      ['an overlong text', 'A'.repeat(MAX_CAPABILITY_CHARS + 1)],
    ])('refuses %s', (_, input) => {
      expect(decodeCapability(input)).toBeUndefined();
      expect(capabilityExpiry(input)).toBeUndefined();
    });

    it('never throws on random text', () => {
      fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => void decodeCapability(s)));
      fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => void decodeCapability(text(Buffer.from(b)))));
    });
  });

  describe('capability_key line', () => {
    const key = Buffer.alloc(32, 7);

    it('round-trips', () => {
      expect(formatCapabilityKeyLine(key)).toBe(`capability_key:${key.toString('base64url')}`);
      expect(capabilityKeyOf(['session_token:ab', formatCapabilityKeyLine(key)])?.equals(key)).toBe(true);
    });

    it.each([[[]], [['capability_key:']], [['capability_key:AAAA']], [[`capability_key:${'A'.repeat(42)}B`]]])(
      'finds none in %j',
      (lines) => expect(capabilityKeyOf(lines)).toBeUndefined(),
    );
  });
});

function withByte(b: Buffer, at: number, value: number): Buffer {
  const copy = Buffer.from(b);
  copy[at] = value;
  return copy;
}

/** The same bytes with the unused low bits of the last character set: a second spelling Node would accept. */
function nonCanonical(text: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(text[text.length - 1]);
  return text.slice(0, -1) + alphabet[last ^ 1];
}
