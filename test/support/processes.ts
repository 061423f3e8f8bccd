import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FrameDecoder, HELLO_LINE, PROTOCOL_NAME, Reply, ReplyAssembler } from '@app/protocol';

export const ROOT = resolve(__dirname, '..', '..');
export const TRACKER_MAIN = join(ROOT, 'dist/apps/tracker/apps/tracker/src/main.js');
export const CLIENT_MAIN = join(ROOT, 'dist/apps/client/apps/client/src/main.js');

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

export function tempDir(prefix = 'p2p-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A temp folder holding a tracker_info.txt with `count` trackers on free ports. */
export async function trackerNetwork(count: number): Promise<{ dir: string; infoFile: string; ports: number[] }> {
  const dir = tempDir();
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const infoFile = join(dir, 'tracker_info.txt');
  writeFileSync(infoFile, ports.map((p) => `127.0.0.1:${p}`).join('\n') + '\n');
  return { dir, infoFile, ports };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A child process whose output is collected and can be waited on. */
export class Proc {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private mark = 0;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until stdout (after the last `send`) matches; returns the text since then. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = this.stdout.slice(this.mark);
      if (pattern.test(seen)) return seen;
      if (!this.running)
        throw new Error(`process exited before ${pattern} appeared; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${pattern}; output since mark:\n${seen}\nstderr:\n${this.stderr}`);
      await sleep(20);
    }
  }

  /** Writes one input line; later `waitFor`s only look at output printed after it. */
  send(line: string): void {
    this.mark = this.stdout.length;
    this.child.stdin?.write(line + '\n');
  }

  /** Sends a line and waits for the answer matching `pattern`. */
  async run(line: string, pattern: RegExp, timeoutMs?: number): Promise<string> {
    this.send(line);
    return this.waitFor(pattern, timeoutMs);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `check` holds, asking every `everyMs`; throws naming `what` after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = 'a condition',
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

export function startTracker(infoFile: string, n: number, dataDir: string, extra: string[] = []): Proc {
  return new Proc(
    spawn(process.execPath, [TRACKER_MAIN, infoFile, String(n), '--data-dir', dataDir, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Starts tracker N and waits until it listens. */
export async function startTrackerReady(
  infoFile: string,
  n: number,
  dataDir: string,
  extra: string[] = [],
): Promise<Proc> {
  const p = startTracker(infoFile, n, dataDir, extra);
  await p.waitFor(/listening on/, 15_000);
  return p;
}

export function startClient(address: string, infoFile: string, extra: string[] = [], cwd?: string): Proc {
  return new Proc(
    spawn(process.execPath, [CLIENT_MAIN, address, infoFile, ...extra], { stdio: ['pipe', 'pipe', 'pipe'], cwd }),
  );
}

/** A client process in a folder of its own. */
export interface ClientPeer {
  readonly name: string;
  readonly port: number;
  /** Its working folder; its data directory is `<dir>/.state`. */
  readonly dir: string;
  readonly proc: Proc;
}

/**
 * Starts a client named `name` on 127.0.0.1:`port`, working in `<parentDir>/<name>` (made if missing) with its data
 * in `<parentDir>/<name>/.state`, plus `extra` flags. The same name and port again is that client restarted.
 */
export function startClientIn(
  parentDir: string,
  infoFile: string,
  name: string,
  port: number,
  extra: readonly string[] = [],
): ClientPeer {
  const dir = join(parentDir, name);
  mkdirSync(dir, { recursive: true });
  const proc = startClient(`127.0.0.1:${port}`, infoFile, ['--data-dir', join(dir, '.state'), ...extra], dir);
  return { name, port, dir, proc };
}

/** Runs a client over a whole script on stdin and waits for it to exit; pass `--data-dir` in `extra`. */
export async function runClientScript(
  address: string,
  infoFile: string,
  lines: string[],
  { extra = [], cwd, timeoutMs = 30_000 }: { extra?: string[]; cwd?: string; timeoutMs?: number } = {},
) {
  const p = startClient(address, infoFile, extra, cwd);
  p.child.stdin?.end(lines.map((l) => l + '\n').join(''));
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** A raw protocol connection, as `nc` would open. */
export class RawConn {
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private readonly assembler = new ReplyAssembler();
  private readonly replies: Reply[] = [];
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let f = this.decoder.next(); f; f = this.decoder.next()) {
        if (f.type !== 'line') continue;
        const reply = this.assembler.push(f.line);
        if (reply) this.replies.push(reply);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /**
   * Connects to 127.0.0.1:`port`, from `localAddress` when given (an attacker's 127.0.0.2, ...), and
   * sends `HELLO p2p-share/2` first so that replies are framed (rejects unless it gets `OK 0 p2p-share/2`).
   * `{ hello: false }`: nothing is sent (the seed form, or a test that sends its own first line).
   */
  static async open(port: number, localAddress?: string, options: { hello?: boolean } = {}): Promise<RawConn> {
    const conn = await new Promise<RawConn>((res, rej) => {
      const s = new Socket();
      s.once('error', rej);
      s.connect({ port, host: '127.0.0.1', localAddress }, () => res(new RawConn(s)));
    });
    if (options.hello === false) return conn;
    const hello = await conn.request(HELLO_LINE);
    if (!hello.ok || hello.message !== PROTOCOL_NAME || hello.lines.length > 0) {
      conn.close();
      throw new Error(`HELLO answered with ${JSON.stringify(hello)}`);
    }
    return conn;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async reply(timeoutMs = 10_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error('connection closed before a reply');
      if (Date.now() > deadline) throw new Error('timed out waiting for a reply');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.replies.shift()!;
  }

  async request(line: string): Promise<Reply> {
    this.write(line + '\n');
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }
}

/**
 * Registers and logs in each client as its user (`pw-<name>` passwords), then
 * the first makes `group` and lets every other one in.
 */
/** A new user `name` (password `pw-<name>`) on the client `proc`, logged in. */
export async function signUp(proc: Proc, name: string): Promise<void> {
  await proc.run(`create_user ${name} pw-${name}`, /created/);
  await proc.run(`login ${name} pw-${name}`, /logged in/);
}

/** A new user `name` on the client `proc`, logged in and let into `group` by its owner on the client `owner`. */
export async function signUpAndJoin(proc: Proc, name: string, owner: Proc, group = 'team'): Promise<void> {
  await signUp(proc, name);
  await proc.run(`join_group ${group}`, /asked to join/);
  await owner.run(`accept_request ${group} ${name}`, /now a member/);
}

export async function formGroup(clients: readonly (readonly [Proc, string])[], group = 'team'): Promise<void> {
  for (const [proc, name] of clients) await signUp(proc, name);
  const [[owner], ...members] = clients;
  await owner.run(`create_group ${group}`, /created/);
  for (const [proc, name] of members) {
    await proc.run(`join_group ${group}`, /asked to join/);
    await owner.run(`accept_request ${group} ${name}`, /now a member/);
  }
}
