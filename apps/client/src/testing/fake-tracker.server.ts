import { HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { acceptTls, createSelfSigned, fingerprintOf, peerFingerprint, serverContext, sniffStartTls } from '@app/tls';
import * as net from 'node:net';
import { SecureContext } from 'node:tls';

export type LineHandler = (line: string, socket: net.Socket) => unknown;

/** A tracker's TLS identity for a fake: its key and certificate, and the fingerprint a client pins. */
export interface FakeTrackerIdentity {
  readonly keyPem: string;
  readonly certPem: string;
  readonly fingerprint: string;
}

/** A new self-signed identity, as a tracker makes on first start (no files). */
export function fakeTrackerIdentity(): FakeTrackerIdentity {
  const made = createSelfSigned('p2p-share fake tracker');
  return { ...made, fingerprint: fingerprintOf(made.certPem) };
}

/** What a fake tracker counts of its TLS: STARTTLS asked, bytes read inside TLS, client certificates seen. */
export class FakeTlsStats {
  /** Connections that asked for STARTTLS. */
  startTls = 0;
  /** Bytes received inside TLS, over all connections: none when a client refused the certificate. */
  tlsBytes = 0;
  /** The fingerprints of the certificates clients presented inside TLS. */
  readonly clientFingerprints: (string | undefined)[] = [];
}

/** The TLS settings of a fake tracker with `identity`. */
export function fakeTrackerContext(identity: FakeTrackerIdentity): SecureContext {
  return serverContext({ ...identity, keyFile: '', certFile: '', created: false });
}

/**
 * Does for a fake tracker what our trackers' transport does with a new
 * connection: a first line `STARTTLS` is answered and the connection goes on
 * inside TLS (asking for the client's certificate). Resolves with the socket
 * to read requests from and the bytes already read from it (`head`), or
 * undefined when the connection is over (bytes injected after STARTTLS, a
 * handshake the client gave up on).
 */
export async function startTlsIfAsked(
  plain: net.Socket,
  context: SecureContext,
  stats: FakeTlsStats,
  track: (socket: net.Socket) => void,
): Promise<{ socket: net.Socket; head?: Buffer } | undefined> {
  const first = await sniffStartTls(plain);
  if (first.kind === 'injected') {
    plain.destroy();
    return undefined;
  }
  if (first.kind === 'plain') return { socket: plain, head: first.head };
  stats.startTls++;
  try {
    const secure = await acceptTls(plain, { context, requestCert: true, timeoutMs: 5000 });
    stats.clientFingerprints.push(peerFingerprint(secure));
    secure.on('error', () => undefined);
    secure.on('data', (chunk: Buffer) => (stats.tlsBytes += chunk.length));
    track(secure);
    return { socket: secure };
  } catch {
    return undefined; // the client went away during the handshake (a certificate it refused)
  }
}

export interface FakeTrackerOptions {
  /** Answer `STARTTLS` as the first line and speak TLS after it, as our trackers do (default true). */
  readonly tls?: boolean;
  /** The certificate presented after `STARTTLS` (default: one made for this server). */
  readonly identity?: FakeTrackerIdentity;
}

/**
 * An in-process TCP server on a free 127.0.0.1 port playing tracker: it
 * splits requests into lines and hands each to `handler`, which writes
 * whatever reply bytes the test wants. A connection that starts with
 * `STARTTLS` is answered `OK 0 STARTTLS` and goes on inside TLS with this
 * server's identity (asking for the client's certificate), unless `tls` is
 * false: then `STARTTLS` is a line like any other, as for a seed-form
 * tracker. A connection's first line `HELLO p2p-share/2` (inside TLS, if
 * any) is answered `OK 0 p2p-share/2` here (and counted in `hellos`, not in
 * `received`) unless `answerHello` is false.
 */
export class FakeTrackerServer {
  readonly received: string[] = [];
  connections = 0;
  hellos = 0;
  readonly tls = new FakeTlsStats();
  readonly identity: FakeTrackerIdentity;
  private readonly context: SecureContext | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  private lineWaiters: { count: number; resolve: () => void }[] = [];

  constructor(
    private readonly handler: LineHandler,
    private readonly answerHello = true,
    options: FakeTrackerOptions = {},
  ) {
    this.identity = options.identity ?? fakeTrackerIdentity();
    this.context = options.tls === false ? undefined : fakeTrackerContext(this.identity);
    this.server = net.createServer((socket) => void this.accept(socket));
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): { host: string; port: number } {
    return { host: '127.0.0.1', port: this.port };
  }

  /** Listens on `port` (0: a free one). */
  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return this;
  }

  /** Resolves once `count` request lines have arrived in total. */
  receivedLines(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.lineWaiters.push({ count, resolve }));
  }

  async stop(): Promise<void> {
    this.sockets.forEach((s) => s.destroy());
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async accept(plain: net.Socket): Promise<void> {
    this.connections++;
    this.sockets.add(plain);
    plain.on('close', () => this.sockets.delete(plain));
    plain.on('error', () => undefined);
    let socket: net.Socket = plain;
    let head: Buffer | undefined;
    if (this.context) {
      const opened = await startTlsIfAsked(plain, this.context, this.tls, (secure) => {
        this.sockets.add(secure);
        secure.on('close', () => this.sockets.delete(secure));
      });
      if (!opened) return;
      ({ socket, head } = opened);
    }
    this.serve(socket, head);
  }

  /** Reads request lines from `socket`, starting with `head` (bytes already read from it). */
  private serve(socket: net.Socket, head?: Buffer): void {
    let buffered = '';
    let chain = Promise.resolve();
    let first = true;
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (first && this.answerHello && line === HELLO_LINE) {
          first = false;
          this.hellos++;
          socket.write(`${HELLO_REPLY}\n`);
          continue;
        }
        first = false;
        this.received.push(line);
        this.lineWaiters = this.lineWaiters.filter((w) =>
          this.received.length >= w.count ? (w.resolve(), false) : true,
        );
        chain = chain.then(async () => void (await this.handler(line, socket)));
      }
    };
    if (head && head.length > 0) onData(head);
    socket.on('data', onData);
    socket.resume();
  }
}

/** A port on 127.0.0.1 that nothing listens on (was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Writes `parts` one by one, letting each reach the peer before the next. */
export async function writeInParts(socket: net.Socket, parts: readonly string[]): Promise<void> {
  for (const part of parts) {
    await new Promise<void>((resolve) => socket.write(part, () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
