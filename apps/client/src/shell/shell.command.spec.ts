import { COMMAND_SPECS, CommandName, errReply, okReply, Reply, usage } from '@app/protocol';
import { fingerprintOf, IDENTITY_CERT_FILE, IDENTITY_KEY_FILE } from '@app/tls';
import { Test, TestingModule } from '@nestjs/testing';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ClientModule } from '../client.module';
import { DownloadManager } from '../downloads/download.manager';
import { StartupError } from '../client.errors';
import { ClientOptions, NO_TLS_WARNING } from '../config/client.config';
import { OUTPUT } from '../output/output.port';
import { eventually } from '../seeding/testing/seeding.fixtures';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient } from '../tracker/tracker.client';
import { TrackerConnectionLostError, TrackerUnreachableError } from '../tracker/tracker.errors';
import { KnownNames } from './known-names.service';
import { LOCAL_COMMANDS, LocalCommand } from '../commands/local-command';
import { SHELL_IO } from './shell-io';
import { PROMPT, ShellCommand } from './shell.command';

const TRACKER = { host: '127.0.0.1', port: 7000 };

/** Stands in for TrackerClient: answers from `replies` (or `OK 0 ok <line>`), one request at a time. */
function fakeTracker(replies: Record<string, Reply | Error> = {}) {
  let inFlight = 0;
  let maxInFlight = 0;
  const request = jest.fn(async (line: string): Promise<Reply> => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await new Promise((resolve) => setImmediate(resolve));
    inFlight--;
    const reply = replies[line] ?? okReply(`ok ${line}`);
    if (reply instanceof Error) throw reply;
    return reply;
  });
  return {
    connect: jest.fn(() => Promise.resolve(TRACKER)),
    request,
    close: jest.fn(),
    setSessionToken: jest.fn<void, [string | undefined]>(),
    onResumed: jest.fn(() => () => undefined),
    onSessionLost: jest.fn(() => () => undefined),
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

/** A port that was free a moment ago on 127.0.0.1, for the shell's chunk server. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePort(port));
    });
  });
}

describe(ShellCommand.name, () => {
  // a piped run with a failing command sets exit status 1; the test runner's own status must not keep it
  afterEach(() => (process.exitCode = undefined));
  let dir: string;
  let infoFile: string;
  let runs = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'client-shell-'));
    infoFile = join(dir, 'tracker_info.txt');
    writeFileSync(infoFile, '127.0.0.1:7000\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  interface RunOptions {
    tracker?: ReturnType<typeof fakeTracker>;
    local?: LocalCommand[];
    interactive?: boolean;
    args?: string[];
    downloads?: unknown;
    /** Flags besides `--data-dir`. */
    flags?: ClientOptions;
    /** The data directory (default: a new one per run). */
    dataDir?: string;
    /** Looks into the module after the run, before it closes. */
    inspect?: (moduleRef: TestingModule) => void;
  }

  /** Runs the shell over `input` until it returns; resolves with what it printed. */
  async function runShell(input: string | NodeJS.ReadableStream, options: RunOptions = {}) {
    const tracker = options.tracker ?? fakeTracker();
    const out = new CollectingOutput();
    const echo = new PassThrough();
    let echoed = '';
    echo.on('data', (chunk: Buffer) => (echoed += chunk.toString()));
    let builder = Test.createTestingModule({ imports: [ClientModule] })
      .overrideProvider(TrackerClient)
      .useValue(tracker)
      .overrideProvider(OUTPUT)
      .useValue(out)
      .overrideProvider(SHELL_IO)
      .useValue({
        input: typeof input === 'string' ? Readable.from([input]) : input,
        output: echo,
        interactive: options.interactive ?? false,
      });
    if (options.local) builder = builder.overrideProvider(LOCAL_COMMANDS).useValue(options.local);
    if (options.downloads) builder = builder.overrideProvider(DownloadManager).useValue(options.downloads);
    const moduleRef = await builder.compile();
    // every run seeds from its own free port and keeps its state in its own folder, never in ./data
    const args = options.args ?? [`127.0.0.1:${await freePort()}`, infoFile];
    const dataDir = options.dataDir ?? join(dir, `data-${++runs}`);
    await moduleRef.get(ShellCommand).run(args, { dataDir, ...options.flags });
    options.inspect?.(moduleRef);
    await moduleRef.close();
    // every start prints the client's fingerprint first (and the --no-tls warning before it): `startup`
    const shown = out.lines.findIndex((line) => /^your fingerprint: sha256:[0-9a-f]{64}$/.test(line));
    const startup = out.lines.slice(0, shown + 1);
    return { lines: out.lines.slice(shown + 1), startup, tracker, echoed: () => echoed, dataDir };
  }

  it('forwards tracker commands in input order, one at a time, re-encoded', async () => {
    const input = new PassThrough();
    input.end('create_user alice "s p"\n  login\talice   pw\r\nlist_groups\njoin_group g1\n');
    const tracker = fakeTracker({ list_groups: okReply('2 groups', ['g1', 'g2']) });

    const { lines } = await runShell(input, { tracker });

    expect(tracker.request.mock.calls.map(([line]) => line)).toEqual([
      'create_user alice "s p"',
      'login alice pw',
      'list_groups',
      'join_group g1',
    ]);
    expect(tracker.maxInFlight).toBe(1);
    expect(lines).toEqual([
      'ok create_user alice "s p"',
      'ok login alice pw',
      '2 groups',
      'g1',
      'g2',
      'ok join_group g1',
    ]);
  });

  it('reads lines that arrive while a command is still running', async () => {
    const input = new PassThrough();
    const tracker = fakeTracker();
    tracker.request.mockImplementationOnce((line) => {
      input.end('logout\n');
      return Promise.resolve(okReply(`slow ${line}`));
    });
    input.write('list_groups\n');

    const { lines } = await runShell(input, { tracker });

    expect(lines).toEqual(['slow list_groups', 'ok logout']);
  });

  it('prints an OK reply with an empty message as its body lines only', async () => {
    const tracker = fakeTracker({ list_groups: okReply('', ['g1']), logout: okReply('') });
    const { lines } = await runShell('list_groups\nlogout\n', { tracker });
    expect(lines).toEqual(['g1']);
  });

  it('checks argument counts locally', async () => {
    const { lines, tracker } = await runShell('login alice\ncreate_group\nlist_groups extra\nhelp me\n');

    expect(lines).toEqual([
      'error: usage: login <user_id> <password> (the password must be on the line when input is not a terminal)',
      'error: usage: create_group <group_id>',
      'error: usage: list_groups',
      "error: no command 'me' (type help)",
      'error: 4 of 4 commands failed',
    ]);
    expect(process.exitCode).toBe(1);
    expect(tracker.request).not.toHaveBeenCalled();
  });

  it('accepts optional arguments where the command has them', async () => {
    const echoRun = jest.fn(() => Promise.resolve());
    const echo: LocalCommand = {
      name: 'echo_local',
      args: ['text'],
      optional: ['times'],
      summary: 'say it',
      run: echoRun,
    };

    const { lines } = await runShell('echo_local hi\necho_local hi 3\necho_local hi 3 4\nhelp\n', { local: [echo] });

    expect(echoRun.mock.calls).toEqual([[['hi']], [['hi', '3']]]);
    expect(lines[0]).toBe('error: usage: echo_local <text> [<times>]');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}echo_local <text> \[<times>\] +say it$/));
  });

  it('rejects unknown commands and bad quoting locally', async () => {
    const { lines, tracker } = await runShell('frobnicate\nlogin "alice pw\nlogin a"b c\n');

    expect(lines).toEqual([
      "error: unknown command 'frobnicate' (type help)",
      'error: unterminated quote',
      'error: quotes and backslashes belong inside a quoted argument',
      'error: 3 of 3 commands failed',
    ]);
    expect(tracker.request).not.toHaveBeenCalled();
  });

  it('lists every command with its usage and summary in help, but not the ones the client sends by itself', async () => {
    const { lines } = await runShell('help\n', { local: [] });

    const names = (Object.keys(COMMAND_SPECS) as CommandName[]).filter((n) => n !== 'new_seeder' && n !== 'resume');
    expect(lines.join('\n')).not.toMatch(/new_seeder/);
    expect(lines).toHaveLength(names.length + 5); // the heading, help, exit, quit, and the line on help <command>
    expect(lines[0]).toBe('commands:');
    names.forEach((name, i) => {
      const [shownUsage, summary] = lines[i + 1].trim().split(/ {2,}/);
      expect([shownUsage, summary]).toEqual([usage(name), COMMAND_SPECS[name].summary]);
    });
    expect(lines.slice(-4, -1).map((l) => l.trim().split(/\s+/)[0])).toEqual(['help', 'exit', 'quit']);
    expect(process.exitCode).toBeUndefined();
  });

  it('ignores empty lines', async () => {
    const { lines, tracker } = await runShell('\n   \n\t\nlogout\n\n');
    expect(tracker.request).toHaveBeenCalledTimes(1);
    expect(lines).toEqual(['ok logout']);
  });

  it('stops at exit without waiting for the end of input, and closes the tracker connection', async () => {
    const input = new PassThrough();
    input.write('logout\nexit\nlist_groups\n');

    const { lines, tracker } = await runShell(input);

    expect(lines).toEqual(['ok logout']);
    expect(tracker.request).toHaveBeenCalledTimes(1);
    expect(tracker.close).toHaveBeenCalled();
    input.destroy();
  });

  it('stops at the end of input after answering the last line, even without a newline', async () => {
    const { lines, tracker } = await runShell('logout\nlist_groups');
    expect(lines).toEqual(['ok logout', 'ok list_groups']);
    expect(tracker.close).toHaveBeenCalled();
  });

  it('stops at once on empty input', async () => {
    const { lines } = await runShell('');
    expect(lines).toEqual([]);
  });

  it('logs in with the session token kept for the tracker client, not shown', async () => {
    const token = 'ab'.repeat(32);
    const tracker = fakeTracker({ 'login alice pw': okReply('logged in as alice', [`session_token:${token}`]) });

    const { lines } = await runShell('login alice pw\nlogout\n', { tracker });

    expect(lines).toEqual(['logged in as alice', 'ok logout']);
    expect(tracker.setSessionToken.mock.calls).toEqual([[token], [undefined]]);
  });

  it('prints an ERR reply as an error line', async () => {
    const tracker = fakeTracker({ 'login alice x': errReply('LOGIN_FAILED', 'wrong user id or password') });
    const { lines } = await runShell('login alice x\n', { tracker });
    expect(lines).toEqual(['error: wrong user id or password', 'error: 1 of 1 command failed']);
    expect(process.exitCode).toBe(1);
  });

  it('prints a failed request as an error line and goes on', async () => {
    const tracker = fakeTracker({ logout: new TrackerConnectionLostError(TRACKER) });
    const { lines } = await runShell('logout\nlist_groups\n', { tracker });
    expect(lines).toEqual([
      'error: lost connection to tracker 127.0.0.1:7000',
      'ok list_groups',
      'error: 1 of 2 commands failed',
    ]);
  });

  it('shows usage, summary and an example for help <command>, and suggests near misses', async () => {
    const { lines } = await runShell('help login\nhelp creat_user\ncreat_user\nquit\nlist_groups\n');
    expect(lines).toEqual([
      'usage: login <user_id> <password>',
      '  log in; files you shared from this client are offered again',
      'example: login alice   (the password is asked for without echo; piped: login alice <password>)',
      "error: no command 'creat_user'; did you mean create_user? (type help)",
      "error: unknown command 'creat_user'; did you mean create_user? (type help)",
      'error: 2 of 4 commands failed',
    ]);
  });

  it('expands ~ in local path arguments and hints at quoting when a path with spaces splits', async () => {
    const run = jest.fn(() => Promise.resolve());
    const upload: LocalCommand = { name: 'upload_file', args: ['group_id', 'file_path'], summary: 'share', run };
    const { lines } = await runShell('upload_file ~ ~/a.pdf\nupload_file team ~/my report.pdf\n', { local: [upload] });
    expect(run).toHaveBeenCalledTimes(1);
    expect(run).toHaveBeenCalledWith(['~', join(homedir(), 'a.pdf')]); // a group id is no path
    expect(lines[0]).toBe(
      'error: usage: upload_file <group_id> <file_path>; a path with spaces must be quoted: "my file.pdf"',
    );
  });

  it('remembers the groups and files of list_groups and list_files answers for completion', async () => {
    const tracker = fakeTracker({
      list_groups: okReply('2 groups', ['team owner=a members=1 you=member', 'bobs owner=b members=1 you=none']),
      'list_files team': okReply('1 file in group team', [
        '"my file.bin" size=3 seeders=1',
        'plain.bin size=1 seeders=1',
      ]),
    });
    const input = new PassThrough();
    input.end('list_groups\nlist_files team\n');
    const moduleNames: { groups?: readonly string[]; files?: readonly string[] } = {};
    const { lines } = await runShell(input, {
      tracker,
      inspect: (ref) => {
        const names = ref.get(KnownNames);
        Object.assign(moduleNames, { groups: names.groups, files: names.files });
      },
    });
    expect(lines).toHaveLength(6);
    // most recently seen last: list_files team saw team again; a name with a space is not completed
    expect(moduleNames).toEqual({ groups: ['bobs', 'team'], files: ['plain.bin'] });
  });

  it('runs local commands, which may replace forwarding, and survives their failures', async () => {
    const echoRun = jest.fn(() => Promise.resolve());
    const echo: LocalCommand = { name: 'echo_local', args: ['text'], summary: 'say it', run: echoRun };
    const groups: LocalCommand = {
      name: 'list_groups',
      args: [],
      summary: 'local groups',
      run: () => Promise.reject(new Error('disk on fire')),
    };

    const { lines, tracker } = await runShell('echo_local hi\nlist_groups\necho_local\nhelp\n', {
      local: [echo, groups],
    });

    expect(echoRun).toHaveBeenCalledWith(['hi']);
    expect(tracker.request).not.toHaveBeenCalled();
    expect(lines.slice(0, 2)).toEqual(['error: disk on fire', 'error: usage: echo_local <text>']);
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}list_groups +local groups$/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}echo_local <text> +say it$/));
  });

  it('prompts on interactive input', async () => {
    const input = new PassThrough();
    input.end('logout\n');

    const { lines, echoed } = await runShell(input, { interactive: true });

    expect(lines).toEqual(['ok logout']);
    expect(echoed()).toContain(PROMPT);
  });

  describe('Ctrl-C', () => {
    /** One download running until `cancelAll`; the input stays open, so only Ctrl-C ends the shell. */
    function running() {
      const entries = [{ job: { progress: { state: 'downloading' } } }];
      return {
        downloads: entries,
        cancelAll: jest.fn(() => (entries[0].job.progress.state = 'failed')),
        idle: jest.fn(() => Promise.resolve()),
      };
    }
    const stopping =
      'stopping 1 download; its .part files stay and resume at the next login (Ctrl-C again quits at once)';

    afterEach(() => (process.exitCode = undefined));

    it('at the prompt stops the running downloads (their files kept) and leaves with status 130', async () => {
      const input = new PassThrough();
      const downloads = running();
      const shell = runShell(input, { interactive: true, downloads });
      // Ctrl-C as a terminal sends it: a key that readline reads
      input.write('\x03');
      const { lines } = await shell;
      expect(downloads.cancelAll).toHaveBeenCalledTimes(1);
      expect(lines).toEqual([stopping]);
      expect(process.exitCode).toBe(130);
    });

    it('as a SIGINT does the same, and the handler goes with the shell', async () => {
      const input = new PassThrough();
      const downloads = running();
      const before = process.listenerCount('SIGINT');
      const shell = runShell(input, { downloads });
      await eventually(() => process.listenerCount('SIGINT') === before + 1, 'the shell listens for SIGINT');
      process.emit('SIGINT');
      const { lines } = await shell;
      expect(downloads.cancelAll).toHaveBeenCalledTimes(1);
      expect(lines).toEqual([stopping]);
      expect(process.exitCode).toBe(130);
      expect(process.listenerCount('SIGINT')).toBe(before);
    });
  });

  it('does not prompt on piped input', async () => {
    const { echoed } = await runShell('logout\n');
    expect(echoed()).toBe('');
  });

  describe('start-up', () => {
    it.each([[['127.0.0.1:7001']], [['nonsense', 'x']], [['127.0.0.1:7001', '/nonexistent/tracker_info.txt']]])(
      'fails with exit status 2 on %j',
      async (args) => {
        const tracker = fakeTracker();
        const run = runShell('logout\n', { tracker, args });
        await expect(run).rejects.toThrow(StartupError);
        await expect(run).rejects.toMatchObject({ exitCode: 2 });
        expect(tracker.connect).not.toHaveBeenCalled();
      },
    );

    it("prints this client's fingerprint, the one of the certificate made in its data directory", async () => {
      const { startup, dataDir } = await runShell('');
      const made = fingerprintOf(readFileSync(join(dataDir, IDENTITY_CERT_FILE), 'utf8'));
      expect(startup).toEqual([`your fingerprint: ${made}`]);
      expect(statSync(join(dataDir, IDENTITY_KEY_FILE)).mode & 0o777).toBe(0o600);

      const again = await runShell('', { dataDir });
      expect(again.startup).toEqual([`your fingerprint: ${made}`]);
    });

    it('warns once, before anything else, that --no-tls sends everything in clear', async () => {
      const { startup } = await runShell('', { flags: { tls: false } });
      expect(startup).toEqual([NO_TLS_WARNING, expect.stringMatching(/^your fingerprint: sha256:/)]);
    });

    it('prints only the fingerprint with --print-fingerprint, making the identity, and connects to nothing', async () => {
      const tracker = fakeTracker();
      const dataDir = join(dir, `data-${++runs}`);
      const { startup, lines, echoed } = await runShell('logout\n', {
        tracker,
        dataDir,
        flags: { printFingerprint: true },
      });
      expect(echoed()).toBe(`${fingerprintOf(readFileSync(join(dataDir, IDENTITY_CERT_FILE), 'utf8'))}\n`);
      expect([...startup, ...lines]).toEqual([]);
      expect(tracker.connect).not.toHaveBeenCalled();
      expect(tracker.request).not.toHaveBeenCalled();
    });

    it('fails with exit status 2, naming the file, on half an identity', async () => {
      const dataDir = join(dir, `data-${++runs}`);
      mkdirSync(dataDir);
      writeFileSync(join(dataDir, IDENTITY_KEY_FILE), 'not a key\n', { mode: 0o600 });
      const tracker = fakeTracker();
      const run = runShell('logout\n', { tracker, dataDir });
      await expect(run).rejects.toMatchObject({ exitCode: 2 });
      await expect(run).rejects.toThrow(`${join(dataDir, IDENTITY_CERT_FILE)} does not`);
      expect(tracker.connect).not.toHaveBeenCalled();
    });

    it('fails with exit status 1 when no tracker answers', async () => {
      const tracker = fakeTracker();
      tracker.connect.mockRejectedValue(new TrackerUnreachableError([TRACKER]));
      const run = runShell('logout\n', { tracker });
      await expect(run).rejects.toMatchObject({ exitCode: 1, message: 'no tracker reachable (tried 127.0.0.1:7000)' });
      expect(tracker.request).not.toHaveBeenCalled();
    });
  });
});
