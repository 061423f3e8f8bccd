import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Reads the network's shared secret, creating it when no tracker has yet.
 * Every tracker of a network needs the same file; clients never read it.
 */
export function loadClusterKey(path: string): Buffer {
  try {
    writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let text = readFileSync(path, 'utf8').trim();
  // another tracker may have created the file a moment ago and still be writing it
  for (let tries = 0; text === '' && tries < 50; tries++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    text = readFileSync(path, 'utf8').trim();
  }
  if (!/^[0-9a-f]{32,}$/i.test(text)) throw new Error(`${path} does not hold a key (hex, at least 16 bytes)`);
  return Buffer.from(text, 'hex');
}
