import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprintOf, IDENTITY_CERT_FILE, IDENTITY_KEY_FILE, IdentityError, loadOrCreateIdentity } from './identity';
import { createSelfSigned } from './self-signed';

describe('loadOrCreateIdentity', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'identity-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a P-256 key (0600) and a self-signed certificate on first use, and loads the same one after', () => {
    const made = loadOrCreateIdentity(join(dir, 'data'), 'tracker 1');
    expect(made.created).toBe(true);
    expect(made.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(statSync(made.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data')).mode & 0o777).toBe(0o700);
    const cert = new X509Certificate(made.certPem);
    expect(cert.subject).toBe('CN=tracker 1');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(made.fingerprint).toBe(`sha256:${cert.fingerprint256.replace(/:/g, '').toLowerCase()}`);

    const again = loadOrCreateIdentity(join(dir, 'data'), 'tracker 1');
    expect(again.created).toBe(false);
    expect(again.fingerprint).toBe(made.fingerprint);
    expect(again.keyPem).toBe(made.keyPem);
  });

  it('gives every new identity its own key', () => {
    const a = loadOrCreateIdentity(join(dir, 'a'), 'x');
    const b = loadOrCreateIdentity(join(dir, 'b'), 'x');
    expect(a.fingerprint).not.toBe(b.fingerprint);
  });

  it('refuses a key others may read, naming the file and chmod 600', () => {
    const made = loadOrCreateIdentity(dir, 'c');
    chmodSync(made.keyFile, 0o644);
    expect(() => loadOrCreateIdentity(dir, 'c')).toThrow(IdentityError);
    expect(() => loadOrCreateIdentity(dir, 'c')).toThrow(`chmod 600 ${made.keyFile}`);
  });

  it('says which directory it cannot keep an identity in, and leaves nothing behind', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const err = (() => {
      try {
        loadOrCreateIdentity(join(file, 'data'), 'client');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as Error).message).toMatch(new RegExp(`^cannot keep an identity in ${join(file, 'data')}: ENOTDIR`));
    expect(readdirSync(dir)).toEqual(['a-file']);
  });

  it('refuses half an identity instead of silently making a new one', () => {
    const made = loadOrCreateIdentity(dir, 'c');
    unlinkSync(made.certFile);
    expect(() => loadOrCreateIdentity(dir, 'c')).toThrow(`${IDENTITY_CERT_FILE} does not`);
    unlinkSync(made.keyFile);
    writeFileSync(join(dir, IDENTITY_CERT_FILE), made.certPem);
    expect(() => loadOrCreateIdentity(dir, 'c')).toThrow(`${IDENTITY_KEY_FILE} does not`);
  });

  it('refuses a certificate that is not for the key', () => {
    const made = loadOrCreateIdentity(dir, 'c');
    writeFileSync(made.certFile, createSelfSigned('other').certPem);
    expect(() => loadOrCreateIdentity(dir, 'c')).toThrow('is not the certificate of');
  });

  it('names a certificate by the SHA-256 of its DER bytes, from PEM or DER alike', () => {
    const { certPem } = createSelfSigned('z');
    const der = new X509Certificate(certPem).raw;
    expect(fingerprintOf(certPem)).toBe(fingerprintOf(der));
  });
});
