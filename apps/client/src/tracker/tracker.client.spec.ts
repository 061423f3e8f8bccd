import { formatReply, okReply } from '@app/protocol';
import { closedPort, FakeTrackerServer, writeInParts } from '../testing/fake-tracker.server';
import { configServiceFor } from '../testing/client-config.factory';
import { TrackerClient } from './tracker.client';
import { TrackerConnectionLostError, TrackerProtocolError, TrackerUnreachableError } from './tracker.errors';

const echo = (line: string) => formatReply(okReply(`got ${line}`));

describe(TrackerClient.name, () => {
  const servers: FakeTrackerServer[] = [];
  let client: TrackerClient | undefined;

  const start = async (handler: ConstructorParameters<typeof FakeTrackerServer>[0]) => {
    const server = await new FakeTrackerServer(handler).start();
    servers.push(server);
    return server;
  };
  const clientFor = (...trackers: { host: string; port: number }[]) =>
    (client = new TrackerClient(configServiceFor(trackers)));

  afterEach(async () => {
    client?.close();
    client = undefined;
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it('sends one line and assembles a multi-line reply split across writes', async () => {
    const server = await start((line, socket) =>
      writeInParts(socket, ['OK 3 three li', 'nes\nalpha\nbe', 'ta', '\ngamma', '\n']),
    );
    const tracker = clientFor(server.address);

    await expect(tracker.request('list_groups')).resolves.toEqual(okReply('three lines', ['alpha', 'beta', 'gamma']));
    expect(server.received).toEqual(['list_groups']);
  });

  it('returns ERR replies as values', async () => {
    const server = await start((_, socket) => socket.write('ERR WRONG_PASSWORD wrong password for alice\n'));
    const tracker = clientFor(server.address);

    await expect(tracker.request('login alice x')).resolves.toEqual({
      ok: false,
      code: 'WRONG_PASSWORD',
      message: 'wrong password for alice',
    });
  });

  it('keeps one request in flight at a time', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = await start(async (line, socket) => {
      if (line === 'first') await released;
      socket.write(echo(line));
    });
    const tracker = clientFor(server.address);

    const first = tracker.request('first');
    const second = tracker.request('second');
    await server.receivedLines(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.received).toEqual(['first']);
    release();

    await expect(first).resolves.toEqual(okReply('got first'));
    await expect(second).resolves.toEqual(okReply('got second'));
    expect(server.received).toEqual(['first', 'second']);
  });

  it('fails the request in flight when the connection drops, and reconnects for the next one', async () => {
    const server = await start((line, socket) => (line === 'drop' ? socket.destroy() : socket.write(echo(line))));
    const tracker = clientFor(server.address);

    const lost = tracker.request('drop');
    await expect(lost).rejects.toThrow(TrackerConnectionLostError);
    await expect(lost).rejects.toThrow(`lost connection to tracker 127.0.0.1:${server.port}`);
    await expect(tracker.request('again')).resolves.toEqual(okReply('got again'));
    expect(server.connections).toBe(2);
  });

  it('notices a connection that dropped while idle', async () => {
    let closed!: Promise<void>;
    const server = await start((line, socket) => {
      socket.write(echo(line));
      if (line === 'bye') {
        closed = new Promise((resolve) => socket.on('close', () => resolve()));
        socket.end();
      }
    });
    const tracker = clientFor(server.address);

    await expect(tracker.request('bye')).resolves.toEqual(okReply('got bye'));
    await closed;
    expect(tracker.tracker).toBeUndefined();
    await expect(tracker.request('hello')).resolves.toEqual(okReply('got hello'));
    expect(server.connections).toBe(2);
  });

  it('uses the second tracker when the first is down', async () => {
    const dead = { host: '127.0.0.1', port: await closedPort() };
    const server = await start((line, socket) => socket.write(echo(line)));
    const tracker = clientFor(dead, server.address);

    await expect(tracker.connect()).resolves.toEqual(server.address);
    await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
  });

  it('fails over to the next tracker in file order when the current one goes away', async () => {
    const first = await start((line, socket) => socket.destroy());
    const second = await start((line, socket) => socket.write(echo(line)));
    const tracker = clientFor(first.address, second.address);
    await expect(tracker.connect()).resolves.toEqual(first.address);

    servers.splice(servers.indexOf(first), 1);
    await first.stop();
    await expect(tracker.request('one')).rejects.toThrow(TrackerConnectionLostError);
    await expect(tracker.request('two')).resolves.toEqual(okReply('got two'));
    expect(tracker.tracker).toEqual(second.address);
  });

  it('says which trackers it tried when none answers', async () => {
    const a = { host: '127.0.0.1', port: await closedPort() };
    const b = { host: '127.0.0.1', port: await closedPort() };
    const tracker = clientFor(a, b);

    await expect(tracker.connect()).rejects.toThrow(TrackerUnreachableError);
    await expect(tracker.request('x')).rejects.toThrow(
      `no tracker reachable (tried 127.0.0.1:${a.port}, 127.0.0.1:${b.port})`,
    );
  });

  it('drops a connection that answers with something other than a reply', async () => {
    const server = await start((line, socket) => socket.write(line === 'bad' ? 'HELLO there\n' : echo(line)));
    const tracker = clientFor(server.address);

    await expect(tracker.request('bad')).rejects.toThrow(TrackerProtocolError);
    await expect(tracker.request('good')).resolves.toEqual(okReply('got good'));
    expect(server.connections).toBe(2);
  });

  it('fails a request in flight on close', async () => {
    const server = await start(() => undefined);
    const tracker = clientFor(server.address);
    const pending = tracker.request('never answered');
    await server.receivedLines(1);

    tracker.close();
    await expect(pending).rejects.toThrow(TrackerConnectionLostError);
  });

  it('refuses a request that is not a single line', async () => {
    const tracker = clientFor({ host: '127.0.0.1', port: 1 });
    await expect(tracker.request('a\nb')).rejects.toThrow(TrackerProtocolError);
  });
});
