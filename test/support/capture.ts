import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';

/** The bytes one relayed connection carried: `up` from the connecting side, `down` back to it. */
export interface CapturedConnection {
  readonly up: Buffer[];
  readonly down: Buffer[];
  /** Set once both sides are closed. */
  closed: boolean;
}

export interface RecordingRelayOptions {
  /** The port to relay to, on `targetHost` (default 127.0.0.1). */
  readonly targetPort: number;
  readonly targetHost?: string;
  /** Where the relay listens (default 127.0.0.1, any free port). */
  readonly listenHost?: string;
  readonly listenPort?: number;
  /**
   * The source address of the relay's outgoing connections (127.0.0.2, ...): the target then sees the peer at
   * that host (a tracker records a seeder at the host its tracker connection comes from).
   */
  readonly sourceAddress?: string;
}

/**
 * A TCP relay that forwards both ways unchanged and keeps every byte in each direction: what an observer on the
 * path between the two ends sees.
 */
export class RecordingRelay {
  readonly connections: CapturedConnection[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly options: RecordingRelayOptions,
  ) {}

  static async start(options: RecordingRelayOptions): Promise<RecordingRelay> {
    const server = createServer();
    const relay = new RecordingRelay(server, options);
    server.on('connection', (socket) => relay.relay(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, options.listenHost ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `host:port` where the relay listens. */
  get address(): string {
    return `${this.options.listenHost ?? '127.0.0.1'}:${this.port}`;
  }

  /** All bytes of every connection in `direction` (`both`: up and down), connection after connection. */
  bytes(direction: 'up' | 'down' | 'both' = 'both'): Buffer {
    return Buffer.concat(this.connections.flatMap((c) => connectionBytes(c, direction)));
  }

  /** Forgets what was captured so far (connections still open keep recording into their old entries). */
  clear(): void {
    this.connections.length = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: Socket): void {
    const record: CapturedConnection = { up: [], down: [], closed: false };
    this.connections.push(record);
    const upstream = connect({
      port: this.options.targetPort,
      host: this.options.targetHost ?? '127.0.0.1',
      localAddress: this.options.sourceAddress,
    });
    let open = 2;
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        if (--open === 0) record.closed = true;
      });
    }
    client.on('data', (d: Buffer) => record.up.push(Buffer.from(d)));
    upstream.on('data', (d: Buffer) => record.down.push(Buffer.from(d)));
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }
}

function connectionBytes(c: CapturedConnection, direction: 'up' | 'down' | 'both'): Buffer[] {
  if (direction === 'up') return c.up;
  if (direction === 'down') return c.down;
  return [Buffer.concat(c.up), Buffer.concat(c.down)];
}

/** The bytes of one captured connection in one direction. */
export const sideOf = (c: CapturedConnection, direction: 'up' | 'down'): Buffer => Buffer.concat(c[direction]);

/** Which of `needles` (text or bytes) occur anywhere in `haystack`. */
export function foundIn(haystack: Buffer, needles: readonly (string | Buffer)[]): (string | Buffer)[] {
  return needles.filter((n) => haystack.includes(typeof n === 'string' ? Buffer.from(n, 'utf8') : n));
}

/** A TLS record header as it appears on the wire. */
export interface TlsRecord {
  readonly type: number;
  readonly length: number;
}

/** A handshake record (type 22), the first of a connection in TLS from its first byte. */
export const TLS_HANDSHAKE = 0x16;
/** TLS 1.3 application data records are sent as type 23 (0x17), legacy version 3.3. */
export const TLS_APPLICATION_DATA = 0x17;

/**
 * Reads `bytes` as a run of TLS records (5-byte header: type, version 0x03 0x01..0x03, 2-byte length; then the
 * body) from its start to its end; throws naming the offset where it is not one (a byte in clear between records,
 * say). A record cut off at the end (the capture stopped mid-record) is an error too.
 */
export function tlsRecords(bytes: Buffer): TlsRecord[] {
  const records: TlsRecord[] = [];
  for (let at = 0; at < bytes.length;) {
    if (at + 5 > bytes.length) throw new Error(`${bytes.length - at} bytes at ${at} are not a whole TLS record header`);
    const type = bytes[at];
    const major = bytes[at + 1];
    const minor = bytes[at + 2];
    const length = bytes.readUInt16BE(at + 3);
    if (type < 20 || type > 23 || major !== 3 || minor < 1 || minor > 3 || length > 16_384 + 256) {
      throw new Error(
        `not a TLS record at offset ${at}: ${JSON.stringify(bytes.subarray(at, at + 24).toString('latin1'))}`,
      );
    }
    if (at + 5 + length > bytes.length) throw new Error(`TLS record at ${at} cut off (${length} bytes announced)`);
    records.push({ type, length });
    at += 5 + length;
  }
  return records;
}

/**
 * The bytes of a captured connection side that began with a STARTTLS exchange: what comes after the first line
 * (`STARTTLS` up, `OK 0 STARTTLS` down), checked to be that line; throws when it is not.
 */
export function afterStartTls(bytes: Buffer, direction: 'up' | 'down'): Buffer {
  const line = direction === 'up' ? 'STARTTLS\n' : 'OK 0 STARTTLS\n';
  const head = bytes.subarray(0, line.length).toString('latin1');
  if (head !== line)
    throw new Error(`the connection did not begin with ${JSON.stringify(line)}: ${JSON.stringify(head)}`);
  return bytes.subarray(line.length);
}

/** `count` windows of `width` bytes spread evenly over each `chunkSize` chunk of `data` (the last chunk too). */
export function windowsOf(data: Buffer, chunkSize: number, count: number, width = 32): Buffer[] {
  const out: Buffer[] = [];
  for (let start = 0; start < data.length; start += chunkSize) {
    const end = Math.min(data.length, start + chunkSize);
    const span = end - start - width;
    if (span < 0) continue;
    for (let i = 0; i < count; i++) {
      const at = start + Math.floor((span * i) / Math.max(1, count - 1));
      out.push(data.subarray(at, at + width));
    }
  }
  return out;
}
