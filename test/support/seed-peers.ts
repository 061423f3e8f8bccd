/**
 * A client and a seeder as their authors would write them from the seed's
 * design (`README-seed.md`) alone, knowing nothing else of this project: raw
 * TCP sockets, a bare command line per request, the reply read as text,
 * `download_file` metadata taken by line position, one `GET_CHUNK` per
 * connection answered with raw bytes. No framing, no `HELLO`, no request ids,
 * no import of this project's code: these doubles are what the conformance
 * suite holds the tracker and our client to.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { AddressInfo, createServer, Server, Socket } from 'node:net';

/** The seed's chunk size: 512 KiB, the last chunk of a file shorter. */
export const SEED_CHUNK_SIZE = 512 * 1024;

/** `download_file` metadata as the seed's client reads it: by line position, lists split on commas. */
export interface SeedMetadata {
  fileName: string;
  fileSize: number;
  fileHash: string;
  chunkHashes: string[];
  seeders: string[];
  seederPorts: number[];
  seederFilePaths: string[];
  /** The reply's text as received, all of it. */
  raw: string;
}

/** The seven lines of a `download_file` reply, in the seed's order. */
const METADATA_KEYS = [
  'file_name',
  'file_size',
  'file_hash',
  'chunk_hashes',
  'seeders',
  'seeder_ports',
  'seeder_file_paths',
] as const;

const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest('hex');

/** What one chunk download went through: which seeder, and what was wrong if anything. */
export interface SeedChunkResult {
  index: number;
  seeder: string;
  ok: boolean;
  problem?: string;
}

/** The outcome of `SeedClient.downloadFile`: chunks per seeder, and every failed attempt, unhidden. */
export interface SeedDownload {
  chunksFrom: Map<string, number>;
  failures: SeedChunkResult[];
}

/**
 * The seed's client, talking to one tracker over one TCP connection.
 *
 * Reading a reply: the seed's client does one `read()` per command and shows
 * what it got. `send` does the same: it resolves with the bytes of exactly one
 * `data` event (on 127.0.0.1 a reply written at once arrives in one). Bytes
 * that arrive later are not dropped: they are returned by the next read, so a
 * reply that carries more than it should shows up in the next command's text.
 * Only `download_file` reads on until its seven lines are in (or one `error:`
 * line), since a big file's metadata (8.4 MB for 204,800 chunks) cannot come in
 * one read.
 */
export class SeedClient {
  private pending: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.pending = this.pending.length === 0 ? d : Buffer.concat([this.pending, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<SeedClient> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      socket.once('error', reject);
      socket.connect(port, host, () => {
        socket.off('error', reject);
        resolve(new SeedClient(socket));
      });
    });
  }

  /** True once the tracker closed the connection. */
  get closed(): boolean {
    return this.ended;
  }

  /** Writes `line` and a newline, and returns the text of one read. */
  async send(line: string, timeoutMs = 10_000): Promise<string> {
    this.socket.write(line + '\n');
    return (await this.read(timeoutMs)).toString('utf8');
  }

  /** One read: whatever arrived and was not read yet, or else the next `data` event. */
  async read(timeoutMs = 10_000): Promise<Buffer> {
    await this.until(() => this.pending.length > 0, timeoutMs, 'a reply');
    const got = this.pending;
    this.pending = Buffer.alloc(0);
    return got;
  }

  /** Bytes received and not read yet (none, after a reply that was exactly one read). */
  get unread(): string {
    return this.pending.toString('utf8');
  }

  async createUser(user: string, password: string): Promise<string> {
    return this.send(`create_user ${user} ${password}`);
  }

  async login(user: string, password: string): Promise<string> {
    return this.send(`login ${user} ${password}`);
  }

  /**
   * `download_file <group> <name> [<destination>]`, the reply's lines taken by
   * position: line 1 is `file_name:`, line 2 `file_size:` ... line 7
   * `seeder_file_paths:`. Throws with the text received when the reply is an
   * error or its lines are not the seven in that order.
   */
  async downloadMetadata(group: string, name: string, destination?: string, timeoutMs = 30_000): Promise<SeedMetadata> {
    this.socket.write(`download_file ${group} ${name}${destination === undefined ? '' : ` ${destination}`}\n`);
    const text = await this.readLines(METADATA_KEYS.length, timeoutMs);
    const lines = text.split('\n');
    const values = METADATA_KEYS.map((key, i) => {
      const line = lines[i] ?? '';
      if (!line.startsWith(`${key}:`)) {
        throw new Error(`download_file reply line ${i + 1} is not ${key}: ${JSON.stringify(line.slice(0, 120))}`);
      }
      return line.slice(key.length + 1);
    });
    const list = (v: string) => (v === '' ? [] : v.split(','));
    return {
      fileName: values[0],
      fileSize: Number(values[1]),
      fileHash: values[2],
      chunkHashes: list(values[3]),
      seeders: list(values[4]),
      seederPorts: list(values[5]).map(Number),
      seederFilePaths: list(values[6]),
      raw: text,
    };
  }

  /**
   * The seed's `upload_file`: hashes the file (SHA-1 of the whole and of each
   * 512 KiB chunk) and sends `upload_file <group_id> <file_path> <file_size>
   * <file_hash> <chunk_hashes> <my_port>`, every hash inline, a bare port.
   */
  async uploadFile(group: string, path: string, port: number): Promise<string> {
    const { size, hash, chunkHashes } = await hashFile(path);
    return this.uploadMetadata(group, path, size, hash, chunkHashes, port);
  }

  /** `upload_file` with the metadata given, in one line however long. */
  async uploadMetadata(
    group: string,
    path: string,
    size: number,
    hash: string,
    chunkHashes: readonly string[],
    port: number,
    timeoutMs = 30_000,
  ): Promise<string> {
    return this.send(`upload_file ${group} ${path} ${size} ${hash} ${chunkHashes.join(',')} ${port}`, timeoutMs);
  }

  /**
   * Fetches every chunk of the file described by `meta` into `dest`, one TCP
   * connection per chunk: connect to 127.0.0.1:<seeder_port>, send `GET_CHUNK
   * <i> <seeder_file_path item>`, read exactly the chunk's length of raw bytes,
   * check its SHA-1 against `chunk_hashes`, write it at its offset. Chunk i goes
   * first to seeder i mod n (so every seeder serves), up to `parallel` chunks at
   * once; a failed chunk is tried at the next seeder. Every failure is recorded
   * in the result, also those a retry made good; it throws only when a chunk
   * failed at every seeder.
   */
  async downloadFile(meta: SeedMetadata, dest: string, parallel = 4): Promise<SeedDownload> {
    const n = meta.seeders.length;
    if (n === 0) throw new Error(`no seeders for ${meta.fileName}`);
    if (meta.seederPorts.length !== n || meta.seederFilePaths.length !== n) {
      throw new Error(`seeder lists differ in length: ${meta.raw.split('\n').slice(4, 7).join(' | ')}`);
    }
    const chunkCount = Math.ceil(meta.fileSize / SEED_CHUNK_SIZE);
    if (chunkCount !== meta.chunkHashes.length) {
      throw new Error(`${meta.chunkHashes.length} chunk hashes for ${chunkCount} chunks`);
    }
    const result: SeedDownload = { chunksFrom: new Map(), failures: [] };
    const file = await open(dest, 'w');
    try {
      let next = 0;
      const worker = async () => {
        for (let index = next++; index < chunkCount; index = next++) {
          const length = Math.min(SEED_CHUNK_SIZE, meta.fileSize - index * SEED_CHUNK_SIZE);
          let data: Buffer | undefined;
          for (let attempt = 0; attempt < n && !data; attempt++) {
            const s = (index + attempt) % n;
            const seeder = meta.seeders[s];
            try {
              const got = await fetchSeedChunk(meta.seederPorts[s], index, meta.seederFilePaths[s], length);
              if (sha1(got) !== meta.chunkHashes[index]) {
                throw new Error(
                  `SHA-1 mismatch; first bytes ${JSON.stringify(got.subarray(0, 24).toString('latin1'))}`,
                );
              }
              data = got;
              result.chunksFrom.set(seeder, (result.chunksFrom.get(seeder) ?? 0) + 1);
            } catch (e) {
              result.failures.push({ index, seeder, ok: false, problem: (e as Error).message });
            }
          }
          if (!data) throw new Error(`chunk ${index} failed at every seeder: ${JSON.stringify(result.failures)}`);
          await file.write(data, 0, data.length, index * SEED_CHUNK_SIZE);
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, chunkCount) }, worker));
    } finally {
      await file.close();
    }
    return result;
  }

  close(): void {
    this.socket.destroy();
  }

  /** Reads until `count` newline-ended lines are in, or one line starting `error:`; returns their text. */
  private async readLines(count: number, timeoutMs: number): Promise<string> {
    let text = '';
    let scanned = 0;
    let lines = 0;
    let end = -1;
    const isError = () => lines >= 1 && text.startsWith('error:');
    const complete = () => {
      if (this.pending.length > 0) {
        text += this.pending.toString('latin1');
        this.pending = Buffer.alloc(0);
      }
      for (let at = text.indexOf('\n', scanned); at >= 0 && lines < count && !isError();) {
        lines++;
        end = at;
        scanned = at + 1;
        at = text.indexOf('\n', scanned);
      }
      if (lines < count && !isError()) {
        scanned = text.length;
        return false;
      }
      if (end + 1 < text.length) this.pending = Buffer.from(text.slice(end + 1), 'latin1');
      text = text.slice(0, end + 1);
      return true;
    };
    await this.until(complete, timeoutMs, `${count} lines`);
    const reply = Buffer.from(text, 'latin1').toString('utf8');
    if (isError()) throw new Error(`download_file answered ${JSON.stringify(reply)}`);
    return reply;
  }

  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.ended) throw new Error(`the tracker closed the connection before ${what}; unread: ${this.unread}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/**
 * One chunk from a seed-form seeder: a connection of its own, `GET_CHUNK <i>
 * <item>\n`, exactly `length` raw bytes back. The seeder then ends the
 * connection; bytes after the chunk, or no end within `closeWithinMs`, are a
 * failure here (the seed's client would not notice, but the chunk would not
 * be the exchange the seed describes).
 */
export function fetchSeedChunk(
  port: number,
  index: number,
  item: string,
  length: number,
  timeoutMs = 10_000,
  closeWithinMs = 2_000,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const pieces: Buffer[] = [];
    let got = 0;
    let settled = false;
    let timer = setTimeout(() => fail(`no ${length} bytes within ${timeoutMs} ms (got ${got})`), timeoutMs);
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`GET_CHUNK ${index} at port ${port}: ${why}`));
    };
    const chunk = () => Buffer.concat(pieces).subarray(0, length);
    socket.on('data', (d: Buffer) => {
      pieces.push(d);
      got += d.length;
      if (got > length) fail(`${got - length} bytes after the chunk's ${length}`);
      else if (got === length) {
        clearTimeout(timer);
        timer = setTimeout(
          () => fail(`the seeder did not close within ${closeWithinMs} ms of the chunk`),
          closeWithinMs,
        );
      }
    });
    socket.on('end', () => {
      if (got === length && !settled) {
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(chunk());
      } else {
        fail(
          `closed after ${got} of ${length} bytes` +
            (got > 0 ? `; first bytes ${JSON.stringify(chunk().subarray(0, 24).toString('latin1'))}` : ''),
        );
      }
    });
    socket.on('close', () => {
      if (got === length && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(chunk());
      } else fail(`closed after ${got} of ${length} bytes`);
    });
    socket.on('error', (e) => fail(e.message));
    socket.connect(port, '127.0.0.1', () => socket.write(`GET_CHUNK ${index} ${item}\n`));
  });
}

/** Size, SHA-1 and 512 KiB chunk SHA-1s of a file, read once. */
export async function hashFile(path: string): Promise<{ size: number; hash: string; chunkHashes: string[] }> {
  const { size } = await stat(path);
  const whole = createHash('sha1');
  const chunkHashes: string[] = [];
  let chunk = createHash('sha1');
  let inChunk = 0;
  for await (const piece of createReadStream(path, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    whole.update(piece);
    for (let at = 0; at < piece.length;) {
      const take = Math.min(piece.length - at, SEED_CHUNK_SIZE - inChunk);
      chunk.update(piece.subarray(at, at + take));
      at += take;
      inChunk += take;
      if (inChunk === SEED_CHUNK_SIZE) {
        chunkHashes.push(chunk.digest('hex'));
        chunk = createHash('sha1');
        inChunk = 0;
      }
    }
  }
  if (inChunk > 0) chunkHashes.push(chunk.digest('hex'));
  return { size, hash: whole.digest('hex'), chunkHashes };
}

/** One request a `SeedSeeder` saw, and what it did about it. */
export interface SeedServed {
  line: string;
  /** Bytes written back: the chunk's length, or 0 for a request it could not serve. */
  bytes: number;
  /** Bytes the peer sent after that first line (a second request, say), which the seed's seeder never reads. */
  extraBytes: number;
}

/**
 * The seed's seeder: a TCP server that reads one `GET_CHUNK <chunk_index>
 * <file_path>` line per connection, writes that chunk of `<file_path>` as raw
 * bytes and closes. A line it cannot serve is answered by closing, no bytes.
 * It serves any path it can read, as the seed does: it binds 127.0.0.1 only,
 * and tests give it temp files only.
 */
export class SeedSeeder {
  readonly served: SeedServed[] = [];
  private readonly sockets = new Set<Socket>();
  /** When the upload link is free again, with `bytesPerSecond` set. */
  private busyUntil = 0;

  private constructor(
    private readonly server: Server,
    private readonly bytesPerSecond: number,
  ) {}

  /** Starts serving on 127.0.0.1; `bytesPerSecond` (0: no limit) paces its chunks, over all connections, as a slow link would. */
  static async start(bytesPerSecond = 0): Promise<SeedSeeder> {
    const server = createServer();
    const seeder = new SeedSeeder(server, bytesPerSecond);
    server.on('connection', (socket) => seeder.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return seeder;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Chunks served with bytes (requests it could not serve not counted). */
  get chunksServed(): number {
    return this.served.filter((s) => s.bytes > 0).length;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let text = '';
    let served: SeedServed | undefined;
    socket.on('data', (d: Buffer) => {
      if (served) {
        served.extraBytes += d.length;
        return;
      }
      text += d.toString('latin1');
      const nl = text.indexOf('\n');
      if (nl < 0) {
        if (text.length > 8192) socket.destroy();
        return;
      }
      const line = Buffer.from(text.slice(0, nl), 'latin1').toString('utf8').replace(/\r$/, '');
      served = { line, bytes: 0, extraBytes: text.length - nl - 1 };
      this.served.push(served);
      void this.answer(socket, served);
    });
  }

  private async answer(socket: Socket, served: SeedServed): Promise<void> {
    const line = served.line;
    const words = line.split(' ');
    const index = Number(words[1]);
    const path = words.slice(2).join(' ');
    let data: Buffer | undefined;
    if (words[0] === 'GET_CHUNK' && words.length >= 3 && Number.isInteger(index) && index >= 0) {
      data = await readChunk(path, index).catch(() => undefined);
    }
    served.bytes = data?.length ?? 0;
    if (!data || data.length === 0) {
      socket.destroy();
      return;
    }
    if (this.bytesPerSecond > 0) {
      this.busyUntil = Math.max(Date.now(), this.busyUntil) + (data.length / this.bytesPerSecond) * 1000;
      await new Promise((resolve) => setTimeout(resolve, this.busyUntil - Date.now()));
    }
    socket.end(data);
  }
}

async function readChunk(path: string, index: number): Promise<Buffer | undefined> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const offset = index * SEED_CHUNK_SIZE;
    if (offset >= size) return undefined;
    const buf = Buffer.alloc(Math.min(SEED_CHUNK_SIZE, size - offset));
    const { bytesRead } = await file.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}
