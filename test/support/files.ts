import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, openSync, writeSync, closeSync } from 'node:fs';

/** Writes `bytes` random bytes to `path` in 1 MiB pieces. */
export function randomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'wx');
  try {
    for (let left = bytes; left > 0;) {
      const piece = randomBytes(Math.min(left, 1024 * 1024));
      writeSync(fd, piece);
      left -= piece.length;
    }
  } finally {
    closeSync(fd);
  }
}

export function sha1File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha1');
    createReadStream(path)
      .on('data', (d) => hash.update(d))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
