import { ErrorCode, errReply, formatHostPort, formatReply, HELLO_LINE, okReply } from '@app/protocol';
import { KNOWN_TRACKERS_FILE } from '@app/tls';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientConfig } from '../config/client.config';
import { clientIdentityFor, configServiceFor } from '../testing/client-config.factory';
import { CollectingOutput } from '../testing/collecting.output';
import { closedPort, FakeTrackerServer, fakeTrackerIdentity, writeInParts } from '../testing/fake-tracker.server';
import { FakeTrackerNetwork, Script } from './testing/fake-tracker-network';
import { TrackerClient } from './tracker.client';
import {
  TrackerConnectionLostError,
  TrackerFailoverError,
  TrackerProtocolError,
  TrackerUnreachableError,
} from './tracker.errors';
import { TrackerTimings } from './tracker.tokens';

const ID = /^#([A-Za-z0-9_-]{1,64}) /;
/** The request line as sent, without its `#<id> ` prefix. */
const withoutId = (line: string) => line.replace(ID, '');
const idOf = (line: string) => ID.exec(line)?.[1];
const echo = (line: string) => formatReply(okReply(`got ${withoutId(line)}`));
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));
/** Polls `check` until it holds (the test's own timeout bounds the wait). */
const until = async (check: () => boolean) => {
  while (!check()) await tick(5);
};

/** Short enough for tests; the failover window still spans a few passes over the list. */
const FAST: Partial<TrackerTimings> = { replyTimeoutMs: 1000, failoverWindowMs: 400, retryPauseMs: 50 };

/** The certificate every fake tracker of this spec presents (and the clients pin), and the clients' own. */
const TRACKER_ID = fakeTrackerIdentity();
const IDENTITY = clientIdentityFor();

describe(TrackerClient.name, () => {
  const servers: FakeTrackerServer[] = [];
  const clients: TrackerClient[] = [];
  let out: CollectingOutput;

  beforeEach(() => (out = new CollectingOutput()));

  const start = async (handler: ConstructorParameters<typeof FakeTrackerServer>[0]) => {
    const server = await new FakeTrackerServer(handler, true, { identity: TRACKER_ID }).start();
    servers.push(server);
    return server;
  };
  /** A client of `trackers`, each pinned to the identity the fakes of this spec present unless `config` says. */
  const clientFor = (
    trackers: { host: string; port: number }[],
    timings: Partial<TrackerTimings> = FAST,
    config: Partial<ClientConfig> = {},
  ) => {
    const pins = trackers.map(() => TRACKER_ID.fingerprint);
    const client = new TrackerClient(
      configServiceFor(trackers, { trackerPins: pins, ...config }),
      out,
      IDENTITY,
      timings,
    );
    clients.push(client);
    return client;
  };

  afterEach(async () => {
    clients.splice(0).forEach((c) => c.close());
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  describe('requests', () => {
    it('sends one line and assembles a multi-line reply split across writes', async () => {
      const server = await start((line, socket) =>
        writeInParts(socket, ['OK 3 three li', 'nes\nalpha\nbe', 'ta', '\ngamma', '\n']),
      );
      const tracker = clientFor([server.address]);

      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('three lines', ['alpha', 'beta', 'gamma']));
      expect(server.received.map(withoutId)).toEqual(['list_groups']);
    });

    it('puts a fresh id in front of every request, one prefix per client, continuation lines as they are', async () => {
      const server = await start((line, socket) => {
        if (ID.test(line)) socket.write(echo(line));
      });
      const one = clientFor([server.address]);
      const two = clientFor([server.address]);

      await one.request('list_groups');
      await one.request('upload_file g1 /a 1 h @2', ['x', 'y']);
      await one.request('list_groups');
      await two.request('list_groups');

      const requests = server.received.filter((l) => ID.test(l));
      expect(requests.map(withoutId)).toEqual([
        'list_groups',
        'upload_file g1 /a 1 h @2',
        'list_groups',
        'list_groups',
      ]);
      expect(server.received.filter((l) => !ID.test(l))).toEqual(['x', 'y']);
      const ids = requests.map(idOf) as string[];
      expect(new Set(ids).size).toBe(4);
      const prefix = (id: string) => id.replace(/-\d+$/, '');
      expect(new Set(ids.slice(0, 3).map(prefix)).size).toBe(1);
      expect(prefix(ids[3])).not.toBe(prefix(ids[0]));
    });

    it('returns ERR replies as values', async () => {
      const server = await start((_, socket) => socket.write('ERR LOGIN_FAILED wrong user id or password\n'));
      const tracker = clientFor([server.address]);

      await expect(tracker.request('login alice x')).resolves.toEqual({
        ok: false,
        code: 'LOGIN_FAILED',
        message: 'wrong user id or password',
      });
    });

    it('keeps one request in flight at a time', async () => {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const server = await start(async (line, socket) => {
        if (withoutId(line) === 'first') await released;
        socket.write(echo(line));
      });
      const tracker = clientFor([server.address]);

      const first = tracker.request('first');
      const second = tracker.request('second');
      await server.receivedLines(1);
      await tick(20); // the behaviour under test: for a while, nothing more is sent
      expect(server.received.map(withoutId)).toEqual(['first']);
      release();

      await expect(first).resolves.toEqual(okReply('got first'));
      await expect(second).resolves.toEqual(okReply('got second'));
      expect(server.received.map(withoutId)).toEqual(['first', 'second']);
    });

    it('drops a connection that answers with something other than a reply, failing only that request', async () => {
      const server = await start((line, socket) =>
        socket.write(withoutId(line) === 'bad' ? 'HELLO there\n' : echo(line)),
      );
      const tracker = clientFor([server.address]);

      await expect(tracker.request('bad')).rejects.toThrow(TrackerProtocolError);
      await expect(tracker.request('good')).resolves.toEqual(okReply('got good'));
      expect(server.received.map(withoutId)).toEqual(['bad', 'good']);
      expect(server.connections).toBe(2);
    });

    it('fails a request in flight on close, without failing over', async () => {
      const server = await start(() => undefined);
      const other = await start((line, socket) => socket.write(echo(line)));
      const tracker = clientFor([server.address, other.address]);
      const pending = tracker.request('never answered');
      await server.receivedLines(1);

      tracker.close();
      await expect(pending).rejects.toThrow(TrackerConnectionLostError);
      expect(other.connections).toBe(0);
      expect(out.lines).toEqual([]);
    });

    it('refuses a request that is not a single line', async () => {
      const tracker = clientFor([{ host: '127.0.0.1', port: 1 }]);
      await expect(tracker.request('a\nb')).rejects.toThrow(TrackerProtocolError);
      await expect(tracker.request('a', ['b\r'])).rejects.toThrow(TrackerProtocolError);
    });
  });

  describe('connecting', () => {
    it('starts with the first tracker in file order that answers', async () => {
      const dead = { host: '127.0.0.1', port: await closedPort() };
      const server = await start((line, socket) => socket.write(echo(line)));
      const tracker = clientFor([dead, server.address]);

      await expect(tracker.connect()).resolves.toEqual(server.address);
      await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(out.lines).toEqual([]);
    });

    it('tells which tracker is in use and why the others failed when last tried', async () => {
      const dead = { host: '127.0.0.1', port: await closedPort() };
      const server = await start((line, socket) => socket.write(echo(line)));
      const untried = { host: '127.0.0.1', port: await closedPort() };
      const tracker = clientFor([dead, server.address, untried]);

      await tracker.connect();

      expect(tracker.trackerStates()).toEqual([
        { tracker: dead, inUse: false, lastFailure: 'connection refused' },
        { tracker: server.address, inUse: true },
        { tracker: untried, inUse: false },
      ]);
      tracker.close();
      expect(tracker.trackerStates().map((s) => s.inUse)).toEqual([false, false, false]);
    });

    it('says which trackers it tried when none answers at start-up, at once', async () => {
      const a = { host: '127.0.0.1', port: await closedPort() };
      const b = { host: '127.0.0.1', port: await closedPort() };
      const tracker = clientFor([a, b], { ...FAST, failoverWindowMs: 5000 });

      const started = Date.now();
      await expect(tracker.connect()).rejects.toThrow(TrackerUnreachableError);
      await expect(tracker.request('x')).rejects.toThrow(
        `no tracker reachable (tried 127.0.0.1:${a.port}, 127.0.0.1:${b.port})`,
      );
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('opens every connection with HELLO p2p-share/2 and sends requests only after its OK', async () => {
      const server = await start((line, socket) => socket.write(echo(line)));
      const tracker = clientFor([server.address]);

      await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(server.hellos).toBe(1);
      expect(server.received.map(withoutId)).toEqual(['hi']);
    });

    it('passes over a tracker that refuses the HELLO (too many connections), and says why when all do', async () => {
      const refusing = new FakeTrackerServer(
        (line, socket) => void socket.end('ERR TOO_MANY_CONNECTIONS at most 8 connections from 127.0.0.1\n'),
        false,
        { identity: TRACKER_ID },
      );
      await refusing.start();
      servers.push(refusing);
      const server = await start((line, socket) => socket.write(echo(line)));
      await expect(clientFor([refusing.address, server.address]).request('hi')).resolves.toEqual(okReply('got hi'));
      expect(refusing.received).toEqual([HELLO_LINE]);

      const alone = clientFor([refusing.address]);
      await expect(alone.request('x')).rejects.toThrow(
        `no tracker reachable (tried ${formatHostPort(refusing.address)}); ` +
          `${formatHostPort(refusing.address)} refused: at most 8 connections from 127.0.0.1`,
      );
    });

    it('does not take a tracker that answers the HELLO in the seed form', async () => {
      const seedOnly = new FakeTrackerServer(
        (line, socket) => void socket.write("error: unknown command 'HELLO'\n"),
        false,
        { identity: TRACKER_ID },
      );
      await seedOnly.start();
      servers.push(seedOnly);
      await expect(clientFor([seedOnly.address]).request('x')).rejects.toThrow(TrackerUnreachableError);
      expect(seedOnly.received).toEqual([HELLO_LINE]);
    });

    it('reconnects after a connection dropped while idle (no session: on the next request)', async () => {
      let closed!: Promise<void>;
      const server = await start((line, socket) => {
        socket.write(echo(line));
        if (withoutId(line) === 'bye') {
          closed = new Promise((resolve) => socket.on('close', () => resolve()));
          socket.end();
        }
      });
      const tracker = clientFor([server.address]);

      await expect(tracker.request('bye')).resolves.toEqual(okReply('got bye'));
      await closed;
      await until(() => tracker.tracker === undefined);
      expect(server.connections).toBe(1);
      await expect(tracker.request('hello')).resolves.toEqual(okReply('got hello'));
      expect(server.connections).toBe(2);
      expect(out.lines).toEqual([`tracker ${formatHostPort(server.address)} went away; reconnected`]);
    });
  });

  describe('a connection the tracker closed for being idle', () => {
    const IDLE = 'ERR IDLE_TIMEOUT closed after 15 s without a request before login\n';
    const TOKEN = 'ab'.repeat(32);
    /** Two trackers; the first answers everything and closes its connection as idle when the test says. */
    async function pair(onLine?: (line: string, socket: import('node:net').Socket) => boolean) {
      let last: import('node:net').Socket | undefined;
      const first = await start((line, socket) => {
        last = socket;
        if (onLine?.(line, socket)) return;
        if (withoutId(line) === 'login alice pw') socket.write(`OK 1 logged in\nsession_token:${TOKEN}\n`);
        else socket.write(echo(line));
      });
      const second = await start((line, socket) => socket.write(echo(line)));
      const closeIdle = () => last!.end(IDLE);
      return { first, second, closeIdle };
    }

    it('is replaced by a new one to the same tracker at the next request, without a word', async () => {
      const { first, second, closeIdle } = await pair();
      const tracker = clientFor([first.address, second.address]);
      await tracker.request('list_groups');
      closeIdle();
      await until(() => tracker.tracker === undefined);
      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('got list_groups'));
      expect(first.connections).toBe(2);
      expect(second.connections).toBe(0);
      expect(out.lines).toEqual([]);
    });

    it('with a session, is replaced at once and the session resumed there, without a word', async () => {
      const { first, second, closeIdle } = await pair();
      const tracker = clientFor([first.address, second.address]);
      const resumed = jest.fn();
      tracker.onResumed(resumed);
      const reply = await tracker.request('login alice pw');
      tracker.setSessionToken(reply.ok ? reply.lines[0].replace('session_token:', '') : undefined);
      closeIdle();
      await until(() => resumed.mock.calls.length > 0);
      expect(withoutId(first.received[1])).toBe(`resume ${TOKEN}`);
      expect(resumed.mock.calls).toEqual([[first.address]]);
      expect(second.connections).toBe(0);
      expect(out.lines).toEqual([]);
    });

    it('sends a request the tracker answered with IDLE_TIMEOUT again, with the same id, on a new connection', async () => {
      let closed = false;
      const { first } = await pair((line, socket) => {
        if (closed || withoutId(line) !== 'create_group team') return false;
        closed = true;
        socket.end(IDLE);
        return true;
      });
      const tracker = clientFor([first.address]);
      await expect(tracker.request('create_group team')).resolves.toEqual(okReply('got create_group team'));
      expect(first.received).toHaveLength(2);
      expect(idOf(first.received[1])).toBe(idOf(first.received[0]));
      expect(first.connections).toBe(2);
      expect(out.lines).toEqual([]);
    });
  });

  describe('failover', () => {
    let network: FakeTrackerNetwork;
    let tracker: TrackerClient;
    let resumed: jest.Mock;
    let lost: jest.Mock;

    /** Starts `count` trackers of one network and a client logged in on the first. */
    async function loggedIn(count: number, script?: Script, timings: Partial<TrackerTimings> = FAST) {
      network = await new FakeTrackerNetwork(TRACKER_ID).start(count, script);
      tracker = clientFor(network.addresses, timings);
      resumed = jest.fn();
      lost = jest.fn();
      tracker.onResumed(resumed);
      tracker.onSessionLost(lost);
      const reply = await tracker.request('login alice pw');
      if (!reply.ok) throw new Error(reply.message);
      tracker.setSessionToken(reply.lines[0].replace('session_token:', ''));
      return tracker;
    }
    const name = (n: number) => formatHostPort(network.addresses[n - 1]);

    afterEach(() => network?.stop());

    it('sends the request in flight again, with the same id, to the next tracker after resume', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'create_group team' ? 'die' : undefined));
      const token = tracker.sessionToken;

      const created = tracker.request('create_group team');
      const queued = tracker.request('list_groups');

      const reply = await created;
      expect(reply.ok && reply.message).toMatch(/^done \(request #\S+ had already been applied\)$/);
      await expect(queued).resolves.toEqual(okReply('done list_groups'));
      const [sent] = network.seenBy(1).filter((r) => r.line === 'create_group team');
      expect(network.seenBy(2).map((r) => r.line)).toEqual([`resume ${token}`, 'create_group team', 'list_groups']);
      expect(network.seenBy(2)[1].id).toBe(sent.id);
      expect(network.seenBy(2)[0].id).not.toBe(sent.id);
      expect(out.lines).toEqual([`tracker ${name(1)} went away; now using ${name(2)}`]);
      expect(tracker.tracker).toEqual(network.addresses[1]);
      expect(resumed.mock.calls).toEqual([[network.addresses[1]]]);
      expect(lost).not.toHaveBeenCalled();
    });

    it('applies a request the old tracker never got', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'join_group g1' ? 'drop' : undefined));

      await expect(tracker.request('join_group g1')).resolves.toEqual(okReply('done join_group g1'));
      expect(network.seenBy(2).map((r) => r.line.split(' ')[0])).toEqual(['resume', 'join_group']);
    });

    it('prints one notice for a failover that several queued requests wait on, and keeps their order', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'one' ? 'die' : undefined));

      const replies = await Promise.all(['one', 'two', 'three'].map((l) => tracker.request(l)));

      expect(replies.slice(1)).toEqual([okReply('done two'), okReply('done three')]);
      expect(
        network
          .seenBy(2)
          .map((r) => r.line)
          .slice(1),
      ).toEqual(['one', 'two', 'three']);
      expect(out.lines).toHaveLength(1);
      expect(resumed).toHaveBeenCalledTimes(1);
    });

    it('wraps around the list to the first tracker', async () => {
      network = await new FakeTrackerNetwork(TRACKER_ID).start(3, ({ tracker: n, line }) =>
        n === 3 && line === 'list_groups' ? 'die' : undefined,
      );
      await network.trackers[0].stop();
      await network.trackers[1].stop();
      tracker = clientFor(network.addresses);
      await expect(tracker.connect()).resolves.toEqual(network.addresses[2]);
      await network.trackers[0].start();

      const listed = tracker.request('list_groups');
      await network.until(() => network.seenBy(3).length === 1);
      await network.trackers[1].start();

      await expect(listed).resolves.toEqual(okReply('done list_groups'));
      expect(network.seenBy(1).map((r) => r.line)).toEqual(['list_groups']);
      expect(network.seenBy(2)).toEqual([]);
      expect(out.lines).toEqual([`tracker ${name(3)} went away; now using ${name(1)}`]);
    });

    it('clears the session when the new tracker does not know it, and says so', async () => {
      await loggedIn(2, ({ tracker: n, line }) => {
        if (n !== 1 || line !== 'list_files g1') return undefined;
        network.sessions.clear(); // e.g. the session was revoked meanwhile
        return 'die';
      });

      await expect(tracker.request('list_files g1')).resolves.toEqual(okReply('done list_files g1'));

      expect(network.seenBy(2).map((r) => [r.line.split(' ')[0], r.user])).toEqual([
        ['resume', undefined],
        ['list_files', undefined],
      ]);
      expect(out.lines).toEqual([
        `tracker ${name(1)} went away; now using ${name(2)}`,
        'error: session lost on the new tracker; log in again',
      ]);
      expect(tracker.sessionToken).toBeUndefined();
      expect(lost.mock.calls).toEqual([[network.addresses[1]]]);
      expect(resumed).not.toHaveBeenCalled();
    });

    it('says the session expired, once, when the new tracker refuses it with SESSION_EXPIRED, and goes on without it', async () => {
      await loggedIn(2, ({ tracker: n, line }) => {
        if (n === 1 && line === 'list_groups') return 'die';
        if (n === 2 && line.startsWith('resume ')) {
          return errReply(ErrorCode.SessionExpired, 'that session has expired; log in again');
        }
        return undefined;
      });

      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('done list_groups'));
      await expect(tracker.request('list_files g1')).resolves.toEqual(okReply('done list_files g1'));

      // one resume, no loop
      expect(network.seenBy(2).map((r) => r.line.split(' ')[0])).toEqual(['resume', 'list_groups', 'list_files']);
      expect(out.lines).toEqual([
        `tracker ${name(1)} went away; now using ${name(2)}`,
        'error: your session has expired; log in again',
      ]);
      expect(tracker.sessionToken).toBeUndefined();
      expect(lost.mock.calls).toEqual([[network.addresses[1]]]);
      expect(resumed).not.toHaveBeenCalled();
    });

    it('gives up after the failover window when no tracker answers, then tries again on the next request', async () => {
      await loggedIn(2, ({ line }) => (line === 'create_group team' ? 'die' : undefined));
      await network.trackers[1].stop();

      const started = Date.now();
      const failed = tracker.request('create_group team');
      const queued = tracker.request('list_groups');
      await expect(failed).rejects.toThrow(TrackerFailoverError);
      await expect(failed).rejects.toThrow(`lost connection to every tracker (tried ${name(1)}, ${name(2)})`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(FAST.failoverWindowMs!);
      await expect(queued).rejects.toThrow(TrackerFailoverError);
      expect(Date.now() - started).toBeLessThan(FAST.failoverWindowMs! * 2 + 500);
      // one notice when the first pass over the list found no tracker, none for the queued request
      expect(out.lines).toEqual([`tracker ${name(1)} went away; trying the others for up to 0.4 s`]);

      await network.trackers[1].start();
      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('done list_groups'));
      expect(out.lines).toEqual([
        `tracker ${name(1)} went away; trying the others for up to 0.4 s`,
        `tracker ${name(1)} went away; now using ${name(2)}`,
      ]);
      expect(network.seenBy(2).map((r) => r.line.split(' ')[0])).toEqual(['resume', 'list_groups']);
    });

    it('keeps trying within the window until a tracker comes back', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'list_groups' ? 'die' : undefined), {
        ...FAST,
        failoverWindowMs: 5000,
      });
      await network.trackers[1].stop();

      const listed = tracker.request('list_groups');
      let settled = false;
      void listed.then(
        () => (settled = true),
        () => (settled = true),
      );
      await network.until(() => network.seen.some((r) => r.line === 'list_groups'));
      await tick(300); // the behaviour under test: for a while no tracker is up, and the request waits
      expect(settled).toBe(false);
      await network.trackers[1].start();

      await expect(listed).resolves.toEqual(okReply('done list_groups'));
      expect(out.lines).toEqual([
        `tracker ${name(1)} went away; trying the others for up to 5 s`,
        `now using tracker ${name(2)}`,
      ]);
    });

    it('counts a tracker that stays silent past the reply timeout as gone', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'list_groups' ? 'hang' : undefined), {
        ...FAST,
        replyTimeoutMs: 200,
      });

      const started = Date.now();
      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('done list_groups'));

      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      expect(network.seenBy(2).map((r) => r.line.split(' ')[0])).toEqual(['resume', 'list_groups']);
      expect(network.seenBy(2)[1].id).toBe(network.seenBy(1).at(-1)!.id);
      expect(out.lines).toEqual([`tracker ${name(1)} went away; now using ${name(2)}`]);
    });

    it('waits for a slow reply as long as bytes keep coming', async () => {
      const lines = Array.from({ length: 6 }, (_, i) => `line ${i}`);
      await loggedIn(
        2,
        async ({ tracker: n, line }, socket) => {
          if (n !== 1 || line !== 'list_groups') return undefined;
          await writeInParts(socket, ['OK 6 slow\n']);
          for (const l of lines) {
            await tick(80); // the behaviour under test: a reply whose lines come slower than the timeout
            socket.write(`${l}\n`);
          }
          return 'hang';
        },
        { ...FAST, replyTimeoutMs: 200 },
      );

      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('slow', lines));
      expect(network.seenBy(2)).toEqual([]);
      expect(out.lines).toEqual([]);
    });

    it('moves the session at once when the tracker goes away while idle', async () => {
      await loggedIn(2);

      await network.trackers[0].stop();
      await network.until(() => network.seenBy(2).length === 1);
      await until(() => resumed.mock.calls.length > 0 && out.lines.length > 0);

      expect(network.seenBy(2)[0].line).toBe(`resume ${tracker.sessionToken}`);
      expect(out.lines).toEqual([`tracker ${name(1)} went away; now using ${name(2)}`]);
      expect(resumed).toHaveBeenCalledTimes(1);
      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('done list_groups'));
      expect(network.seenBy(2).map((r) => r.user)).toEqual([undefined, 'alice']);
      expect(out.lines).toHaveLength(1);
    });

    it('with every tracker down, fails a request queued behind the idle reconnect with one error, not two', async () => {
      await loggedIn(2);
      await network.stop();
      // the client noticed while idle and is failing over in the background when the request comes
      await until(() => out.lines.length > 0);

      const started = Date.now();
      const listed = tracker.request('list_groups');
      await expect(listed).rejects.toThrow(`lost connection to every tracker (tried ${name(1)}, ${name(2)})`);
      expect(Date.now() - started).toBeLessThan(FAST.failoverWindowMs! * 2 + 1000);
      // the notice that it is trying, and no error line of its own: the request reports the failure
      expect(out.lines).toEqual([`tracker ${name(1)} went away; trying the others for up to 0.4 s`]);
    });

    it('says once that every tracker is gone when that happens while idle', async () => {
      await loggedIn(2);
      await network.stop();

      await until(() => out.lines.length >= 2);
      expect(out.lines).toEqual([
        `tracker ${name(1)} went away; trying the others for up to 0.4 s`,
        `error: lost connection to every tracker (tried ${name(1)}, ${name(2)})`,
      ]);
    });

    it('lets listeners send requests of their own, which queue up behind', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'one' ? 'die' : undefined));
      const offered: Promise<unknown>[] = [];
      tracker.onResumed(() => offered.push(tracker.request('new_seeder g1 a.bin /a 127.0.0.1:7001')));

      await expect(tracker.request('one')).resolves.toMatchObject({ ok: true });
      await Promise.all(offered);
      expect(network.seenBy(2).map((r) => r.line.split(' ')[0])).toEqual(['resume', 'one', 'new_seeder']);
    });

    it('gives up on a request that every tracker drops', async () => {
      await loggedIn(2, ({ line }) => (line === 'poison' ? 'drop' : undefined));

      await expect(tracker.request('poison')).rejects.toThrow(TrackerConnectionLostError);
      expect(network.seen.filter((r) => r.line === 'poison')).toHaveLength(3);
      expect(new Set(network.seen.filter((r) => r.line === 'poison').map((r) => r.id)).size).toBe(1);
    });

    it('stops failing over when closed', async () => {
      await loggedIn(2, ({ line }) => (line === 'list_groups' ? 'die' : undefined), {
        ...FAST,
        failoverWindowMs: 10_000,
      });
      await network.trackers[1].stop();

      const listed = tracker.request('list_groups');
      await network.until(() => network.seen.some((r) => r.line === 'list_groups'));
      await tick(100); // the behaviour under test: closed while it is failing over, not before
      tracker.close();

      await expect(listed).rejects.toThrow(TrackerConnectionLostError);
      expect(out.lines).toEqual([`tracker ${name(1)} went away; trying the others for up to 10 s`]);
    });

    it('forgets the token when told, and then only reconnects', async () => {
      await loggedIn(2, ({ tracker: n, line }) => (n === 1 && line === 'list_groups' ? 'die' : undefined));
      tracker.setSessionToken(undefined);

      await expect(tracker.request('list_groups')).resolves.toEqual(okReply('done list_groups'));
      expect(network.seenBy(2).map((r) => r.line)).toEqual(['list_groups']);
      expect(resumed).not.toHaveBeenCalled();
      expect(out.lines).toEqual([`tracker ${name(1)} went away; now using ${name(2)}`]);
    });
  });

  describe('TLS', () => {
    let dataDir: string;
    beforeEach(() => (dataDir = mkdtempSync(join(tmpdir(), 'p2p-tracker-client-'))));
    afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

    const knownFile = () => join(dataDir, KNOWN_TRACKERS_FILE);
    const serve = (line: string, socket: Socket) => socket.write(echo(line));
    const fake = async (options: ConstructorParameters<typeof FakeTrackerServer>[2], port = 0) => {
      const server = await new FakeTrackerServer(serve, true, options).start(port);
      servers.push(server);
      return server;
    };

    it('sends STARTTLS first, presents its certificate and takes a tracker whose certificate is its pin', async () => {
      const server = await start(serve);
      const tracker = clientFor([server.address]);

      await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(server.tls.startTls).toBe(1);
      expect(server.tls.clientFingerprints).toEqual([IDENTITY.get().fingerprint]);
      expect(server.hellos).toBe(1);
      expect(tracker.security).toEqual({ kind: 'tls', fingerprint: TRACKER_ID.fingerprint });
      expect(out.lines).toEqual([]);
      expect(existsSync(knownFile())).toBe(false);
    });

    it('sends nothing past the handshake to a tracker with another certificate at a pinned address, and says why', async () => {
      const impostor = await fake({});
      const tracker = clientFor([impostor.address], FAST, { dataDir });

      const first = tracker.request('login alice s3cret');
      await expect(first).rejects.toThrow(TrackerUnreachableError);
      await expect(first).rejects.toThrow(
        `no tracker reachable (tried ${formatHostPort(impostor.address)}); ${formatHostPort(impostor.address)} ` +
          `presented certificate ${impostor.identity.fingerprint}, not the ${TRACKER_ID.fingerprint} pinned for it`,
      );
      await expect(tracker.request('login alice s3cret')).rejects.toThrow(TrackerUnreachableError);

      expect(impostor.tls.startTls).toBe(2);
      expect(impostor.tls.tlsBytes).toBe(0);
      expect(impostor.hellos).toBe(0);
      expect(impostor.received).toEqual([]);
      // told once for the streak, loudly, with both fingerprints
      expect(out.lines).toEqual([
        `WARNING: tracker ${formatHostPort(impostor.address)} presented certificate ${impostor.identity.fingerprint}, ` +
          `but tracker_info.txt pins ${TRACKER_ID.fingerprint}. Nothing was sent to it: someone may be posing as ` +
          `this tracker. If the tracker really has a new identity, put its new fingerprint in tracker_info.txt.`,
      ]);
      expect(tracker.trackerStates()[0].lastFailure).toBe(
        `certificate mismatch: ${impostor.identity.fingerprint}, expected ${TRACKER_ID.fingerprint}`,
      );
      expect(existsSync(knownFile())).toBe(false);
    });

    it('passes over a tracker that fails its pin to the next one in the file', async () => {
      const impostor = await fake({});
      const server = await start(serve);
      const tracker = clientFor([impostor.address, server.address]);

      await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(tracker.tracker).toEqual(server.address);
      expect(impostor.tls.tlsBytes).toBe(0);
      expect(out.lines).toHaveLength(1);
      expect(out.lines[0]).toMatch(/^WARNING: tracker 127\.0\.0\.1:\d+ presented certificate sha256:/);
    });

    it('trusts an unpinned tracker on first use, keeps it, and refuses a changed one later', async () => {
      const first = await fake({});
      const name = formatHostPort(first.address);
      const trusting = clientFor([first.address], FAST, { dataDir, trackerPins: [undefined] });

      await expect(trusting.request('hi')).resolves.toEqual(okReply('got hi'));
      await expect(trusting.request('hi again')).resolves.toEqual(okReply('got hi again'));
      expect(out.lines).toEqual([
        `trusting tracker ${name} on first use: ${first.identity.fingerprint} (kept in ${knownFile()})`,
      ]);
      expect(readFileSync(knownFile(), 'utf8')).toContain(`${name} ${first.identity.fingerprint}\n`);
      expect(statSync(knownFile()).mode & 0o777).toBe(0o600);

      // the same tracker again, from a new client: known, nothing said
      trusting.close();
      const again = clientFor([first.address], FAST, { dataDir, trackerPins: [undefined] });
      await expect(again.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(out.lines).toHaveLength(1);
      again.close();

      // another key at that address
      const { port } = first.address;
      await first.stop();
      servers.splice(servers.indexOf(first), 1);
      const changed = await fake({}, port);
      const later = clientFor([changed.address], FAST, { dataDir, trackerPins: [undefined] });
      await expect(later.request('login alice s3cret')).rejects.toThrow(
        `${name} presented certificate ${changed.identity.fingerprint}, not the ${first.identity.fingerprint} ` +
          `trusted for it before`,
      );
      expect(changed.tls.startTls).toBe(1);
      expect(changed.tls.tlsBytes).toBe(0);
      expect(changed.received).toEqual([]);
      expect(out.lines.slice(1)).toEqual([
        `WARNING: tracker ${name} presented a different certificate (${changed.identity.fingerprint}) from the one ` +
          `it had when first seen (${first.identity.fingerprint}, kept in ${knownFile()}). Nothing was sent to it: ` +
          `someone may be posing as this tracker. If the tracker really has a new identity, remove its line from ` +
          `${knownFile()} or pin the new fingerprint in the tracker info file.`,
      ]);
      expect(readFileSync(knownFile(), 'utf8')).toContain(`${name} ${first.identity.fingerprint}\n`);
    });

    it('passes over a tracker that speaks no TLS, saying so and naming --no-tls', async () => {
      const plainOnly = new FakeTrackerServer(
        (line, socket) => void socket.write(`error: unknown command '${line}'\n`),
        false,
        { tls: false },
      );
      await plainOnly.start();
      servers.push(plainOnly);
      const name = formatHostPort(plainOnly.address);

      await expect(clientFor([plainOnly.address]).request('x')).rejects.toThrow(
        `no tracker reachable (tried ${name}); ${name} does not speak TLS (start the client with --no-tls to use it anyway)`,
      );
      expect(plainOnly.received).toEqual(['STARTTLS']);

      const server = await start(serve);
      const tracker = clientFor([plainOnly.address, server.address]);
      await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(tracker.trackerStates()[0].lastFailure).toBe(
        'does not speak TLS (start the client with --no-tls to use it anyway)',
      );
    });

    it('speaks plain text with --no-tls', async () => {
      const server = await start(serve);
      const tracker = clientFor([server.address], FAST, { noTls: true, dataDir });

      await expect(tracker.request('hi')).resolves.toEqual(okReply('got hi'));
      expect(server.tls.startTls).toBe(0);
      expect(server.hellos).toBe(1);
      expect(server.received.map(withoutId)).toEqual(['hi']);
      expect(tracker.security).toEqual({ kind: 'plain' });
      expect(existsSync(knownFile())).toBe(false);
    });
  });
});
