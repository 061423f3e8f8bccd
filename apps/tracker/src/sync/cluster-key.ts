import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { assertKeyFileProtected } from '../common/private-files';

/**
 * Reads the network's shared secret, creating it (0600) when no tracker has yet.
 * Every tracker of a network needs the same file; clients never read it. A key
 * file that group or others may read or write is refused (`UnprotectedKeyFileError`).
 */
export function loadClusterKey(path: string): Buffer {
  assertKeyFileProtected(path);
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
