import { HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import * as net from 'node:net';

export type LineHandler = (line: string, socket: net.Socket) => unknown;

/**
 * An in-process TCP server on a free 127.0.0.1 port playing tracker: it
 * splits requests into lines and hands each to `handler`, which writes
 * whatever reply bytes the test wants. A connection's first line
 * `HELLO p2p-share/2` is answered `OK 0 p2p-share/2` here (and counted in
 * `hellos`, not in `received`) unless `answerHello` is false.
 */
export class FakeTrackerServer {
  readonly received: string[] = [];
  connections = 0;
  hellos = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  private lineWaiters: { count: number; resolve: () => void }[] = [];

  constructor(
    private readonly handler: LineHandler,
    private readonly answerHello = true,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): { host: string; port: number } {
    return { host: '127.0.0.1', port: this.port };
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
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

  private accept(socket: net.Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    let chain = Promise.resolve();
    let first = true;
    socket.on('data', (chunk) => {
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
    });
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
