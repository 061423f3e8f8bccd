import { errReply, formatReply, HELLO_LINE, HELLO_REPLY, okReply, Reply, tokenize } from '@app/protocol';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import {
  FakeTlsStats,
  fakeTrackerContext,
  FakeTrackerIdentity,
  fakeTrackerIdentity,
  startTlsIfAsked,
} from '../../testing/fake-tracker.server';

/** A request as a fake tracker saw it: its id (without `#`), the line after the id, who sent it. */
export interface SeenRequest {
  readonly tracker: number;
  readonly id: string | undefined;
  readonly line: string;
  readonly user: string | undefined;
}

/**
 * What a test does with a request instead of the default answer: a Reply is
 * sent (and the request counts as applied), `'hang'` never answers, `'die'`
 * applies the request and then the whole tracker goes away before answering,
 * `'drop'` closes this connection without applying it; `undefined` falls
 * through to the default (`OK 0 done <line>`).
 */
export type Behaviour = Reply | 'hang' | 'die' | 'drop' | undefined;
export type Script = (request: SeenRequest, socket: net.Socket) => Behaviour | Promise<Behaviour>;

const READ_ONLY = new Set(['list_groups', 'list_requests', 'list_files', 'download_file']);

/**
 * Trackers of one network in this process, on free 127.0.0.1 ports, sharing
 * what real trackers replicate: session tokens and the ids of applied
 * requests. They speak the request-id contract (`#<id>` prefix, `OK 0 done
 * (request #<id> had already been applied)`), `login` with a token line,
 * `resume` and `logout`; everything else answers `OK 0 done <line>` unless
 * the test's script says otherwise.
 */
export class FakeTrackerNetwork {
  /** Session token -> user, valid on every tracker until `logout` (or the test) revokes it. */
  readonly sessions = new Map<string, string>();
  /** `user/id` of every applied mutating request. */
  readonly applied = new Set<string>();
  /** Every request line every tracker received, in arrival order. */
  readonly seen: SeenRequest[] = [];
  readonly trackers: FakeNetworkTracker[] = [];
  private waiters: { test: () => boolean; resolve: () => void }[] = [];

  /** `identity`: the certificate every tracker of this network presents after STARTTLS. */
  constructor(readonly identity: FakeTrackerIdentity = fakeTrackerIdentity()) {}

  /** Starts `count` trackers; `script` may take over any request. */
  async start(count: number, script: Script = () => undefined): Promise<this> {
    for (let i = 0; i < count; i++) {
      this.trackers.push(await new FakeNetworkTracker(this, this.trackers.length + 1, script).start());
    }
    return this;
  }

  get addresses(): { host: string; port: number }[] {
    return this.trackers.map((t) => t.address);
  }

  /** Requests tracker `n` (1-based) received. */
  seenBy(n: number): SeenRequest[] {
    return this.seen.filter((r) => r.tracker === n);
  }

  /** Resolves once `test` holds (checked after every request line). */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  async stop(): Promise<void> {
    await Promise.all(this.trackers.map((t) => t.stop()));
  }

  /** Called by the trackers. */
  record(request: SeenRequest): void {
    this.seen.push(request);
    this.waiters = this.waiters.filter((w) => (w.test() ? (w.resolve(), false) : true));
  }
}

export class FakeNetworkTracker {
  connections = 0;
  /** Connections whose first line was `HELLO p2p-share/2` (answered, not recorded as a request). */
  hellos = 0;
  readonly tls = new FakeTlsStats();
  private readonly context;
  private readonly server = net.createServer((socket) => void this.accept(socket));
  private readonly sockets = new Set<net.Socket>();
  private listening = false;
  private port = 0;

  constructor(
    private readonly network: FakeTrackerNetwork,
    readonly number: number,
    private readonly script: Script,
  ) {
    this.context = fakeTrackerContext(network.identity);
  }

  get address(): { host: string; port: number } {
    return { host: '127.0.0.1', port: this.port };
  }

  /** Listens on a free port the first time, on the same port after a `stop`. */
  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    this.listening = true;
    return this;
  }

  /** Goes away: stops listening and drops every connection. */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    this.sockets.forEach((s) => s.destroy());
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async accept(plain: net.Socket): Promise<void> {
    this.connections++;
    this.sockets.add(plain);
    plain.on('close', () => this.sockets.delete(plain));
    plain.on('error', () => undefined);
    const opened = await startTlsIfAsked(plain, this.context, this.tls, (secure) => {
      this.sockets.add(secure);
      secure.on('close', () => this.sockets.delete(secure));
    });
    if (!opened) return;
    const { socket, head } = opened;
    const state: { user: string | undefined; token: string | undefined } = { user: undefined, token: undefined };
    let buffered = '';
    let chain = Promise.resolve();
    let first = true;
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const raw = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (first && raw === HELLO_LINE) {
          first = false;
          this.hellos++;
          socket.write(`${HELLO_REPLY}\n`);
          continue;
        }
        first = false;
        chain = chain.then(() => this.handle(raw, socket, state));
      }
    };
    if (head && head.length > 0) onData(head);
    socket.on('data', onData);
    socket.resume();
  }

  private async handle(
    raw: string,
    socket: net.Socket,
    state: { user: string | undefined; token: string | undefined },
  ): Promise<void> {
    if (socket.destroyed) return;
    const m = /^#([A-Za-z0-9_-]{1,64}) (.*)$/.exec(raw);
    const request: SeenRequest = { tracker: this.number, id: m?.[1], line: m ? m[2] : raw, user: state.user };
    this.network.record(request);
    const [name, ...args] = tokenize(request.line);
    const key = `${state.user}/${request.id}`;
    if (state.user !== undefined && request.id !== undefined && this.network.applied.has(key)) {
      socket.write(formatReply(okReply(`done (request #${request.id} had already been applied)`)));
      return;
    }
    const scripted = await this.script(request, socket);
    if (scripted === 'hang') return;
    if (scripted === 'drop') {
      socket.destroy();
      return;
    }
    const reply = scripted === 'die' || scripted === undefined ? this.answer(name, args, state) : scripted;
    if (reply.ok && state.user !== undefined && request.id !== undefined && !READ_ONLY.has(name)) {
      this.network.applied.add(key);
    }
    if (scripted === 'die') {
      await this.stop();
      return;
    }
    socket.write(formatReply(reply));
  }

  private answer(
    name: string | undefined,
    args: string[],
    state: { user: string | undefined; token: string | undefined },
  ): Reply {
    const { sessions } = this.network;
    switch (name) {
      case 'login': {
        if (state.user !== undefined) return errReply('ALREADY_LOGGED_IN', `already logged in as ${state.user}`);
        const token = randomBytes(32).toString('hex');
        sessions.set(token, args[0]);
        state.user = args[0];
        state.token = token;
        return okReply(`logged in as ${args[0]}`, [`session_token:${token}`]);
      }
      case 'resume': {
        if (state.user !== undefined) return errReply('ALREADY_LOGGED_IN', `already logged in as ${state.user}`);
        const user = sessions.get(args[0]);
        if (user === undefined) return errReply('UNKNOWN_SESSION', 'unknown or expired session');
        state.user = user;
        state.token = args[0];
        return okReply(`resumed the session of ${user}`);
      }
      case 'logout': {
        if (state.user === undefined) return errReply('NOT_LOGGED_IN', 'you are not logged in');
        if (state.token !== undefined) sessions.delete(state.token);
        state.user = undefined;
        state.token = undefined;
        return okReply('logged out');
      }
      default:
        return okReply(`done ${[name, ...args].join(' ')}`);
    }
  }
}
