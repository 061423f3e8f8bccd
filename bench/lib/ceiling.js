#!/usr/bin/env node
// The download ceiling: what plain Node does on this machine with no Nest and no protocol. One process streams a
// file over one loopback TCP connection; another cuts the stream into 512 KiB chunks, SHA-1-hashes each one and
// writes it at its offset (positional writes, a few in flight), like a downloader that got every chunk in order
// from a single perfect seeder. Memory stays bounded: a handful of chunk buffers.
//
//   node ceiling.js send <file> <port-file>       listens on 127.0.0.1:0, writes its port to <port-file>
//   node ceiling.js receive <port> <dest> <size>  prints one JSON line: { seconds, cpuSeconds, bytes }
const { createHash } = require('node:crypto');
const { createReadStream, writeFileSync } = require('node:fs');
const { open } = require('node:fs/promises');
const net = require('node:net');

const CHUNK = 512 * 1024;
const MAX_WRITES = 8;

function send(file, portFile) {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    createReadStream(file, { highWaterMark: CHUNK })
      .pipe(socket)
      .on('finish', () => server.close());
  });
  server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)));
}

async function receive(port, dest, size) {
  const fh = await open(dest, 'w');
  const free = Array.from({ length: MAX_WRITES + 2 }, () => Buffer.allocUnsafe(CHUNK));
  const writes = new Set();
  const hashes = [];
  let chunk = free.pop();
  let filled = 0;
  let offset = 0;
  let received = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);

  const flush = () => {
    const data = chunk.subarray(0, filled);
    hashes.push(createHash('sha1').update(data).digest('hex'));
    const buf = chunk;
    const w = fh.write(data, 0, data.length, offset).then(() => {
      writes.delete(w);
      free.push(buf);
      if (socket.isPaused() && writes.size < MAX_WRITES) socket.resume();
    });
    writes.add(w);
    offset += filled;
    filled = 0;
    chunk = free.pop() ?? Buffer.allocUnsafe(CHUNK);
    if (writes.size >= MAX_WRITES) socket.pause();
  };

  await new Promise((resolve, reject) => {
    socket.on('data', (data) => {
      received += data.length;
      let at = 0;
      while (at < data.length) {
        const take = Math.min(CHUNK - filled, data.length - at);
        data.copy(chunk, filled, at, at + take);
        filled += take;
        at += take;
        if (filled === CHUNK) flush();
      }
    });
    socket.on('end', resolve);
    socket.on('error', reject);
  });
  if (filled > 0) flush();
  await Promise.all([...writes]);
  await fh.close();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  if (received !== size) throw new Error(`received ${received} bytes, expected ${size}`);
  process.stdout.write(
    JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, bytes: received, chunks: hashes.length }) +
      '\n',
  );
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'send') send(args[0], args[1]);
else if (mode === 'receive')
  receive(Number(args[0]), args[1], Number(args[2])).catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
else {
  process.stderr.write('usage: ceiling.js send <file> <port-file> | receive <port> <dest> <size>\n');
  process.exit(2);
}
