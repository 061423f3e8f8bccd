import { errReply, okReply } from '@app/protocol';
import { createServer, Server, Socket } from 'node:net';
import { LineConnectError, LineConnection } from './line-connection';

/** A server that hands each received line to `answer` and writes what it returns, byte by byte if asked. */
async function server(
  answer: (line: string, socket: Socket) => string | undefined,
): Promise<{ srv: Server; port: number; lines: string[] }> {
  const lines: string[] = [];
  const srv = createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8').on('data', (text: string) => {
      buffer += text;
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const out = answer(line, socket);
        if (out !== undefined) socket.write(out);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, port: (srv.address() as { port: number }).port, lines };
}

describe(LineConnection.name, () => {
  const servers: Server[] = [];
  const conns: LineConnection[] = [];
  const open = async (port: number, signal?: AbortSignal) => {
    const c = await LineConnection.open({ host: '127.0.0.1', port }, { timeoutMs: 2000, signal });
    conns.push(c);
    return c;
  };

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  it('answers pipelined requests in order, OK with lines and ERR alike, with their sizes', async () => {
    const { srv, port } = await server((line) =>
      line === 'two' ? 'OK 2 two lines\na\nbb\n' : line === 'bad' ? 'ERR BAD_ARGUMENTS no\n' : 'OK 0 fine\n',
    );
    servers.push(srv);
    const c = await open(port);
    const replies = await Promise.all([c.request('one'), c.request('two'), c.request('bad')]);
    const plain = replies.map(({ bytes: _bytes, ...r }) => r);
    expect(plain).toEqual([okReply('fine'), okReply('two lines', ['a', 'bb']), errReply('BAD_ARGUMENTS', 'no')]);
    expect(replies.map((r) => r.bytes)).toEqual([10, 15 + 2 + 3, 21]);
  });

  it('reads replies split across packets', async () => {
    const { srv, port } = await server((_line, socket) => {
      const text = 'OK 1 split\nhello\n';
      for (let i = 0; i < text.length; i++) setTimeout(() => socket.write(text[i]), i);
      return undefined;
    });
    servers.push(srv);
    const c = await open(port);
    expect(await c.request('x')).toMatchObject(okReply('split', ['hello']));
  });

  it('sends continuation lines after their request', async () => {
    const { srv, port, lines } = await server((line) => (line.startsWith('upload') ? 'OK 0 ok\n' : undefined));
    servers.push(srv);
    const c = await open(port);
    await c.request('upload @2', ['h1', 'h2']);
    expect(lines).toEqual(['upload @2', 'h1', 'h2']);
  });

  it('ends as bad on something that is not a reply, failing what is in flight', async () => {
    const { srv, port } = await server(() => 'HELLO there\n');
    servers.push(srv);
    const c = await open(port);
    const ended = new Promise((r) => c.onClose((kind, err) => r([kind, err.message])));
    await expect(c.request('x')).rejects.toThrow(/not a reply header/);
    expect(await ended).toEqual(['bad', expect.stringMatching(/not a reply header/)]);
    await expect(c.request('y')).rejects.toThrow();
  });

  it('ends as gone when the other side hangs up, and as closed when closed here or aborted', async () => {
    const { srv, port } = await server((_line, socket) => {
      socket.end();
      return undefined;
    });
    servers.push(srv);
    const c = await open(port);
    await expect(c.request('x')).rejects.toThrow(/connection closed/);
    expect(c.endKind).toBe('gone');
    const d = await open(port);
    const inFlight = d.request('never');
    d.close(new Error('done here'));
    await expect(inFlight).rejects.toThrow('done here');
    expect(d.endKind).toBe('closed');
    const abort = new AbortController();
    const e = await open(port, abort.signal);
    abort.abort();
    expect(e.closed).toBe(true);
  });

  it('fails to open with a LineConnectError when nobody listens or the signal is already aborted', async () => {
    const { srv, port } = await server(() => undefined);
    await new Promise((r) => srv.close(r));
    await expect(open(port)).rejects.toBeInstanceOf(LineConnectError);
    const abort = new AbortController();
    abort.abort();
    await expect(open(port, abort.signal)).rejects.toBeInstanceOf(LineConnectError);
  });

  describe('with hello', () => {
    const hello = (port: number, timeoutMs = 2000) =>
      LineConnection.open({ host: '127.0.0.1', port }, { timeoutMs, hello: true }).then((c) => {
        conns.push(c);
        return c;
      });

    it('sends HELLO p2p-share/2 first and resolves once OK 0 p2p-share/2 came back', async () => {
      const { srv, port, lines } = await server((line) =>
        line === 'HELLO p2p-share/2' ? 'OK 0 p2p-share/2\n' : `OK 0 got ${line}\n`,
      );
      servers.push(srv);
      const c = await hello(port);
      expect(lines).toEqual(['HELLO p2p-share/2']);
      expect(await c.request('next')).toEqual({ ...okReply('got next'), bytes: 'OK 0 got next\n'.length });
    });

    it('rejects with the refusal when the HELLO is answered with ERR', async () => {
      const { srv, port } = await server(() => 'ERR TOO_MANY_CONNECTIONS at most 1 connections\n');
      servers.push(srv);
      const err = (await hello(port).catch((e: unknown) => e)) as LineConnectError;
      expect(err).toBeInstanceOf(LineConnectError);
      expect(err.refusal).toEqual(errReply('TOO_MANY_CONNECTIONS', 'at most 1 connections'));
      expect(err.message).toBe('refused: TOO_MANY_CONNECTIONS at most 1 connections');
    });

    it('rejects with the text of a seed-form answer, or of anything else that is not the OK', async () => {
      for (const answer of ["error: unknown command 'HELLO'\n", 'OK 0 p2p-share/3\n', 'OK 1 p2p-share/2\nx\n']) {
        const { srv, port } = await server(() => answer);
        servers.push(srv);
        const err = (await hello(port).catch((e: unknown) => e)) as LineConnectError;
        expect(err).toBeInstanceOf(LineConnectError);
        expect(err.message).toBe(`HELLO answered with '${answer.split('\n')[0]}'`);
      }
    });

    it('rejects when the peer closes without answering, or says nothing in time', async () => {
      const { srv, port } = await server((_line, socket) => void socket.end());
      servers.push(srv);
      await expect(hello(port)).rejects.toThrow(/no answer to HELLO/);
      const { srv: mute, port: mutePort } = await server(() => undefined);
      servers.push(mute);
      await expect(hello(mutePort, 200)).rejects.toThrow(new LineConnectError('connect timed out'));
    });
  });

  it('seals requests and opens replies once secured', async () => {
    const { srv, port, lines } = await server(() => 'OK 0 #sealed\n');
    servers.push(srv);
    const c = await open(port);
    c.secure({
      sealRequest: (line) => `${line} #`,
      openReply: (reply) => {
        if (!reply.message.startsWith('#')) throw new Error('unsealed');
        return { ...reply, message: reply.message.slice(1) };
      },
    });
    expect(await c.request('a', ['b'])).toMatchObject(okReply('sealed'));
    expect(lines).toEqual(['a #', 'b #']);
  });
});
