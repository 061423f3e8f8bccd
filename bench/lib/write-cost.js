#!/usr/bin/env node
// What writing a new file costs on this machine depending on the memory it lands in. Writes <MiB> into a new file
// twice: "warm", right after a file of the same size was deleted (the freed page cache is reused at once), and
// "cold", after <settle ms> idle (on a VM that hands freed memory back to its host, as virtio-balloon free page
// reporting does, the host must supply every page again). 512 KiB positional writes, two in flight, like a download.
// Prints one JSON line: { warm: {seconds, cpuSeconds, systemSeconds}, cold: {...} }.
//
//   node write-cost.js <dir> <MiB> <settle ms>
const { randomFillSync } = require('node:crypto');
const { closeSync, fsyncSync, openSync, rmSync, write } = require('node:fs');
const { join } = require('node:path');

const CHUNK = 512 * 1024;
const [dir, mib, settleMs] = process.argv.slice(2);
const size = Number(mib) * 1024 * 1024;
const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
for (const b of buffers) randomFillSync(b);

/** Writes `size` bytes into a new file at `path`, two writes in flight; resolves with time and CPU. */
function writeFile(path) {
  const fd = openSync(path, 'wx');
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  return new Promise((resolve, reject) => {
    let running = 0;
    const pump = (buf) => {
      if (next >= size) {
        if (--running === 0) {
          const cpu = process.cpuUsage(cpu0);
          closeSync(fd);
          resolve({
            seconds: Number(process.hrtime.bigint() - t0) / 1e9,
            cpuSeconds: (cpu.user + cpu.system) / 1e6,
            systemSeconds: cpu.system / 1e6,
          });
        }
        return;
      }
      const at = next;
      next += CHUNK;
      write(fd, buf, 0, Math.min(CHUNK, size - at), at, (err) => (err ? reject(err) : pump(buf)));
    };
    for (const b of buffers) {
      running++;
      pump(b);
    }
  });
}

async function main() {
  const first = join(dir, 'write-cost.1');
  const second = join(dir, 'write-cost.2');
  const third = join(dir, 'write-cost.3');
  await writeFile(first);
  const fd = openSync(first, 'r');
  fsyncSync(fd);
  closeSync(fd);
  rmSync(first);
  const warm = await writeFile(second);
  rmSync(second);
  await new Promise((resolve) => setTimeout(resolve, Number(settleMs)));
  const cold = await writeFile(third);
  rmSync(third);
  process.stdout.write(JSON.stringify({ warm, cold }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
