import { request } from 'node:http';
import { connect } from 'node:net';
import { HTTP_LIMITS, json, ReadOnlyHttpServer, text } from './read-only-http.server';

function get(port: number, path: string, method = 'GET') {
  return new Promise<{ status: number; body: string; type: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? 'x=1' : undefined);
  });
}

describe(ReadOnlyHttpServer.name, () => {
  let server: ReadOnlyHttpServer;
  let port: number;

  beforeEach(async () => {
    server = new ReadOnlyHttpServer({
      '/ok': () => text(200, 'fine\n'),
      '/json': () => Promise.resolve(json(503, { status: 'starting' })),
      '/boom': () => {
        throw new Error('no database');
      },
    });
    port = (await server.listen(0, '127.0.0.1')).port;
  });
  afterEach(() => server.close());

  it('answers GET on its routes, with the query string ignored', async () => {
    expect(await get(port, '/ok?x=1')).toMatchObject({ status: 200, body: 'fine\n' });
    expect(await get(port, '/json')).toMatchObject({ status: 503, body: '{"status":"starting"}\n' });
    expect((await get(port, '/json')).type).toMatch(/^application\/json/);
  });

  it('answers 404 for any other path and 405 for any other method', async () => {
    expect((await get(port, '/')).status).toBe(404);
    expect((await get(port, '/constructor')).status).toBe(404);
    expect((await get(port, '/ok', 'POST')).status).toBe(405);
    expect((await get(port, '/ok', 'DELETE')).status).toBe(405);
  });

  it('answers 500 with the reason when a route fails', async () => {
    expect(await get(port, '/boom')).toMatchObject({ status: 500, body: 'error: no database\n' });
  });

  it('refuses headers past its limit', async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.write(`GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(HTTP_LIMITS.maxHeaderBytes + 1)}\r\n\r\n`),
      );
      let seen = '';
      socket.setEncoding('utf8').on('data', (d: string) => (seen += d));
      socket.on('close', () => resolve(seen));
      socket.on('error', () => undefined);
    });
    expect(answer).toMatch(/^HTTP\/1.1 431/);
  });
});
