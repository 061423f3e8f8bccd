import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';

/** One GET route: status, content type and body. */
export interface HttpAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export type HttpRoutes = Readonly<Record<string, () => HttpAnswer | Promise<HttpAnswer>>>;

/** Bounds that keep a slow or flooding HTTP client from holding the process it asks (node:http's own options). */
export const HTTP_LIMITS = {
  /** Whole request headers must arrive within this (slowloris). */
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 8 * 1024,
  /** Connections at once; past this, new ones are dropped at accept. */
  maxConnections: 32,
} as const;

/**
 * A small read-only HTTP server: GET (and HEAD) on the given paths, 404 for any other path, 405 for any other
 * method. The request body is never read. Used for the tracker's `/healthz` and `/metrics` and the client's `/metrics`.
 */
export class ReadOnlyHttpServer {
  private server: Server | undefined;

  constructor(private readonly routes: HttpRoutes) {}

  listen(port: number, host: string): Promise<AddressInfo> {
    const server = createServer(
      {
        maxHeaderSize: HTTP_LIMITS.maxHeaderBytes,
        headersTimeout: HTTP_LIMITS.headersTimeoutMs,
        requestTimeout: HTTP_LIMITS.requestTimeoutMs,
        keepAliveTimeout: HTTP_LIMITS.keepAliveTimeoutMs,
      },
      (req, res) => void this.answer(req, res),
    );
    server.maxConnections = HTTP_LIMITS.maxConnections;
    server.maxRequestsPerSocket = 100;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume(); // a body, if any, is drained unread
    const path = (req.url ?? '/').split('?')[0];
    const route = Object.prototype.hasOwnProperty.call(this.routes, path) ? this.routes[path] : undefined;
    let answer: HttpAnswer;
    if (!route) answer = text(404, 'not found\n');
    else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      answer = text(405, 'only GET\n');
    } else {
      try {
        answer = await route();
      } catch (err) {
        answer = text(500, `error: ${(err as Error).message}\n`);
      }
    }
    res.writeHead(answer.status, {
      'Content-Type': answer.contentType,
      'Content-Length': Buffer.byteLength(answer.body),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : answer.body);
  }
}

export const text = (status: number, body: string): HttpAnswer => ({
  status,
  contentType: 'text/plain; charset=utf-8',
  body,
});

export const json = (status: number, value: unknown): HttpAnswer => ({
  status,
  contentType: 'application/json; charset=utf-8',
  body: `${JSON.stringify(value)}\n`,
});
