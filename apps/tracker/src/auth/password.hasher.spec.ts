import { ScryptPasswordHasher } from './password.hasher';

describe(ScryptPasswordHasher.name, () => {
  const hasher = new ScryptPasswordHasher({ N: 1024, r: 8, p: 1 });

  it('verifies the password it hashed and nothing else', async () => {
    const stored = await hasher.hash('correct horse');
    await expect(hasher.verify('correct horse', stored)).resolves.toBe(true);
    await expect(hasher.verify('correct hors', stored)).resolves.toBe(false);
    await expect(hasher.verify('', stored)).resolves.toBe(false);
  });

  it('stores its cost with the hash so another cost setting can still verify it', async () => {
    const stored = await hasher.hash('pw');
    expect(stored.split('$').slice(0, 4)).toEqual(['scrypt', '1024', '8', '1']);
    await expect(new ScryptPasswordHasher({ N: 2048, r: 8, p: 1 }).verify('pw', stored)).resolves.toBe(true);
  });

  it('salts every hash', async () => {
    const [a, b] = await Promise.all([hasher.hash('pw'), hasher.hash('pw')]);
    expect(a).not.toBe(b);
  });

  it.each(['', 'plain-text', 'bcrypt$10$x$y$z$w', 'scrypt$1024$8$1$c2FsdA=='])(
    'rejects the malformed stored value %j',
    async (stored) => {
      await expect(hasher.verify('pw', stored)).resolves.toBe(false);
    },
  );

  it('handles non-ASCII passwords', async () => {
    const stored = await hasher.hash('pässwörd 🔑');
    await expect(hasher.verify('pässwörd 🔑', stored)).resolves.toBe(true);
    await expect(hasher.verify('passwort 🔑', stored)).resolves.toBe(false);
  });
});
