#!/usr/bin/env node
// Node's bare chunk-hashing rate: read a file sequentially in 512 KiB chunks through one reused buffer and SHA-1
// each chunk, on one thread (no Nest, no worker). With `both`, also feed every chunk to a whole-file SHA-1: the same
// work as upload_file, done the plain way; with `whole`, only the whole-file SHA-1. `--at <epoch ms>` waits until then
// before starting the clock (two of these started together then really hash at the same time). Prints one JSON line:
// { seconds, bytes }.
//
//   node hash-rate.js <file> [chunks|both|whole] [--at <epoch ms>]
const { createHash } = require('node:crypto');
const { closeSync, openSync, readSync } = require('node:fs');

const CHUNK = 512 * 1024;
const [file, mode = 'chunks', atFlag, atValue] = process.argv.slice(2);
if (!['chunks', 'both', 'whole'].includes(mode)) throw new Error(`unknown mode ${mode}`);
const fd = openSync(file, 'r');
const buf = Buffer.allocUnsafe(CHUNK);
const whole = mode === 'chunks' ? undefined : createHash('sha1');
const perChunk = mode !== 'whole';
if (atFlag === '--at') while (Date.now() < Number(atValue)); // a spin of a few hundred ms at most
const t0 = process.hrtime.bigint();
let bytes = 0;
let chunks = 0;
for (;;) {
  let n = 0;
  while (n < CHUNK) {
    const got = readSync(fd, buf, n, CHUNK - n, bytes + n);
    if (got === 0) break;
    n += got;
  }
  if (n === 0) break;
  const data = n === CHUNK ? buf : buf.subarray(0, n);
  if (perChunk) createHash('sha1').update(data).digest('hex');
  whole?.update(data);
  bytes += n;
  chunks++;
  if (n < CHUNK) break;
}
whole?.digest('hex');
closeSync(fd);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
process.stdout.write(JSON.stringify({ seconds, bytes, chunks }) + '\n');
