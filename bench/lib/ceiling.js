#!/usr/bin/env node
// The download ceiling: what plain Node does on this machine with no Nest and no protocol. One process streams a
// file over one loopback TCP connection; another cuts the stream into 512 KiB chunks, SHA-1-hashes each one and
// writes it at its offset into a new file, like a downloader that got every chunk in order from a single perfect
// seeder. Memory stays bounded: a few 512 KiB buffers on each side.
//
// Done the efficient plain-Node way (each point measured against the previous implementation, `--impl legacy`):
// - the receiver reads the socket straight into the current chunk buffer (`onread` with a buffer function), so no
//   64 KiB Buffer is allocated per read and nothing is copied; `socket.on('data')` allocated ~16,000 fresh buffers
//   per GiB, and the page faults and GC of those cost more CPU than the SHA-1 itself;
// - one positional write per chunk, at most 2 in flight on the libuv pool, so that writing overlaps hashing and
//   reading; the old 8 in flight bought nothing and cost system time (`--writes sync` writes on the main thread,
//   `--writes async:N` keeps N in flight, for comparison);
// - the sender reads the file into a small ring of reused buffers instead of a fresh 512 KiB buffer per read.
// `--impl legacy` is the previous implementation ('data' events, copies, 8 async writes, createReadStream), kept so
// that one run can show both.
// `--direct` writes as download_file does: every whole chunk with O_DIRECT (no page cache) from page-aligned buffers
// (WebAssembly memory), a short last chunk through the page cache, and with `--contract` no fdatasync along the way.
//
//   node ceiling.js send <file> <port-file> [--impl legacy]      listens on 127.0.0.1:0, writes its port to <port-file>
//   node ceiling.js receive <port> <dest> <size> [--impl legacy] [--writes async:N|sync] [--contract] [--direct]
//                                                                 prints one JSON line: { seconds, cpuSeconds, bytes }
const { createHash } = require('node:crypto');
const {
  closeSync,
  constants,
  createReadStream,
  fdatasync,
  fsyncSync,
  openSync,
  readSync,
  write,
  writeFileSync,
  writeSync,
} = require('node:fs');
const { open } = require('node:fs/promises');
const net = require('node:net');

const CHUNK = 512 * 1024;
const SEND_BUFFERS = 4;

function send(file, portFile, impl) {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    if (impl === 'legacy') {
      createReadStream(file, { highWaterMark: CHUNK })
        .pipe(socket)
        .on('finish', () => server.close());
      return;
    }
    const fd = openSync(file, 'r');
    const free = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafe(CHUNK));
    let position = 0;
    let stalled = false;
    // fills every free buffer and hands it to the socket; a buffer comes back once the kernel has its bytes (the
    // write callback), so the ring bounds what is queued
    const pump = () => {
      while (free.length > 0) {
        const buf = free.pop();
        const n = readSync(fd, buf, 0, CHUNK, position);
        if (n === 0) {
          closeSync(fd);
          socket.end(() => server.close());
          return;
        }
        position += n;
        socket.write(n === CHUNK ? buf : buf.subarray(0, n), () => {
          free.push(buf);
          if (stalled) {
            stalled = false;
            pump();
          }
        });
      }
      stalled = true;
    };
    pump();
  });
  server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)));
}

function finish(t0, cpu0, received, size, chunks) {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  if (received !== size) throw new Error(`received ${received} bytes, expected ${size}`);
  process.stdout.write(
    JSON.stringify({
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      userSeconds: cpu.user / 1e6,
      systemSeconds: cpu.system / 1e6,
      bytes: received,
      chunks,
    }) + '\n',
  );
}

/** The efficient receiver: socket reads land in the chunk buffer; hash, then one positional write per chunk. */
async function receive(port, dest, size, writes, contract, direct) {
  const asyncWrites = /^async:(\d+)$/.exec(writes);
  const maxWrites = asyncWrites ? Math.max(1, Number(asyncWrites[1])) : 0;
  const fd = openSync(dest, 'wx');
  const directFd = direct ? openSync(dest, constants.O_WRONLY | constants.O_DIRECT) : undefined;
  const region = direct ? new WebAssembly.Memory({ initial: ((maxWrites + 1) * CHUNK) / 65536 }).buffer : undefined;
  const newBuffer = (i) => (region ? Buffer.from(region, i * CHUNK, CHUNK) : Buffer.allocUnsafe(CHUNK));
  // sync writes need one buffer; async ones one per write in flight, plus the one being filled
  const free = Array.from({ length: maxWrites }, (_, i) => newBuffer(i + 1));
  let chunk = newBuffer(0);
  let filled = 0;
  let offset = 0;
  let received = 0;
  let chunks = 0;
  let inFlight = 0;
  let failed;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let socket;
  let drained;

  // --contract: also what a download_file must do besides: the whole-file SHA-1 (here inline, the stream comes in
  // order) and a durable file (fdatasync every 64 MiB in the background, fsync at the end)
  const whole = contract ? createHash('sha1') : undefined;
  let unsynced = 0;
  let syncing = false;
  const flush = () => {
    const data = filled === CHUNK ? chunk : chunk.subarray(0, filled);
    createHash('sha1').update(data).digest('hex');
    whole?.update(data);
    if (contract && !direct && (unsynced += data.length) >= 64 * 1024 * 1024 && !syncing) {
      unsynced = 0;
      syncing = true;
      fdatasync(fd, () => (syncing = false));
    }
    chunks++;
    const to = direct && data.length === CHUNK ? directFd : fd;
    if (!maxWrites) {
      writeSync(to, data, 0, data.length, offset);
    } else {
      const buf = chunk;
      inFlight++;
      write(to, data, 0, data.length, offset, (err) => {
        inFlight--;
        if (err) failed ??= err;
        free.push(buf);
        if (socket.isPaused() && inFlight < maxWrites) socket.resume();
        if (inFlight === 0) drained?.();
      });
      chunk = free.pop();
      if (!chunk || inFlight >= maxWrites) {
        chunk ??= Buffer.allocUnsafe(CHUNK); // never reached: a buffer is free whenever fewer are in flight
        socket.pause();
      }
    }
    offset += filled;
    filled = 0;
  };

  await new Promise((resolve, reject) => {
    socket = net.connect({
      host: '127.0.0.1',
      port,
      onread: {
        // called before every read: the kernel copies straight into the free part of the current chunk
        buffer: () => chunk.subarray(filled),
        callback: (n) => {
          received += n;
          filled += n;
          if (filled === CHUNK) flush();
        },
      },
    });
    socket.setNoDelay(true);
    socket.on('end', resolve);
    socket.on('error', reject);
  });
  if (filled > 0) flush();
  if (inFlight > 0) await new Promise((r) => (drained = r));
  if (failed) throw failed;
  if (contract) {
    whole.digest('hex');
    fsyncSync(fd);
  }
  closeSync(fd);
  if (directFd !== undefined) closeSync(directFd);
  finish(t0, cpu0, received, size, chunks);
}

/** The previous receiver, for comparison: 64 KiB 'data' buffers copied into chunks, 8 async writes in flight. */
async function receiveLegacy(port, dest, size) {
  const MAX_WRITES = 8;
  const fh = await open(dest, 'w');
  const free = Array.from({ length: MAX_WRITES + 2 }, () => Buffer.allocUnsafe(CHUNK));
  const writes = new Set();
  let chunk = free.pop();
  let filled = 0;
  let offset = 0;
  let received = 0;
  let chunks = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);

  const flush = () => {
    const data = chunk.subarray(0, filled);
    createHash('sha1').update(data).digest('hex');
    chunks++;
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
  finish(t0, cpu0, received, size, chunks);
}

function option(args, name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
}

const [mode, ...args] = process.argv.slice(2);
const impl = option(args, '--impl', 'efficient');
const fail = (err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
};
if (mode === 'send') send(args[0], args[1], impl);
else if (mode === 'receive' && impl === 'legacy') receiveLegacy(Number(args[0]), args[1], Number(args[2])).catch(fail);
else if (mode === 'receive')
  receive(
    Number(args[0]),
    args[1],
    Number(args[2]),
    option(args, '--writes', 'async:2'),
    args.includes('--contract'),
    args.includes('--direct'),
  ).catch(fail);
else {
  process.stderr.write(
    'usage: ceiling.js send <file> <port-file> [--impl legacy]\n' +
      '       ceiling.js receive <port> <dest> <size> [--impl legacy] [--writes sync|async:N] [--contract] [--direct]\n',
  );
  process.exit(2);
}
