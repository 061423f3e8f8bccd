import { BoundedPasswordHasher, PasswordHasher, ScryptPasswordHasher } from './password.hasher';
import { TryLaterError } from './auth.errors';

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

describe(BoundedPasswordHasher.name, () => {
  /** A hasher whose every call waits until the test finishes it. */
  function gated() {
    const calls: { password: string; finish: () => void }[] = [];
    const inner: PasswordHasher = {
      hash: (password) => new Promise((resolve) => calls.push({ password, finish: () => resolve(`h:${password}`) })),
      verify: (password) => new Promise((resolve) => calls.push({ password, finish: () => resolve(true) })),
    };
    return { inner, calls };
  }
  const settled = () => new Promise((resolve) => setImmediate(resolve));

  it('runs at most maxRunning at once, queues maxQueued more in order, and refuses the rest with TRY_LATER', async () => {
    const { inner, calls } = gated();
    const bounded = new BoundedPasswordHasher(inner, 2, 1);
    const results = ['a', 'b', 'c'].map((pw) => bounded.hash(pw));
    await expect(bounded.verify('d', 'x')).rejects.toThrow(TryLaterError);
    await expect(bounded.verify('d', 'x')).rejects.toThrow('the tracker is busy checking passwords; try again in 1 s');
    await settled();
    expect(calls.map((c) => c.password)).toEqual(['a', 'b']);
    calls[1].finish();
    await settled();
    expect(calls.map((c) => c.password)).toEqual(['a', 'b', 'c']);
    calls[0].finish();
    calls[2].finish();
    await expect(Promise.all(results)).resolves.toEqual(['h:a', 'h:b', 'h:c']);
    // all slots free again
    const again = [bounded.hash('e'), bounded.hash('f'), bounded.hash('g')];
    await settled();
    expect(calls).toHaveLength(5);
    calls.slice(3).forEach((c) => c.finish());
    await settled();
    calls[5].finish();
    await expect(Promise.all(again)).resolves.toEqual(['h:e', 'h:f', 'h:g']);
  });

  it('frees its slot when the work fails', async () => {
    const failing: PasswordHasher = {
      hash: () => Promise.reject(new Error('boom')),
      verify: () => Promise.resolve(false),
    };
    const bounded = new BoundedPasswordHasher(failing, 1, 0);
    await expect(bounded.hash('a')).rejects.toThrow('boom');
    await expect(bounded.verify('a', 'x')).resolves.toBe(false);
  });
});
