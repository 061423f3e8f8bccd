import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomFile } from './support/files';
import {
  CLIENT_MAIN,
  freePort,
  Proc,
  removeDir,
  sleep,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

/**
 * A real client in a real pseudo-terminal: tmux runs it in a detached session of 110x40 cells on a socket of the
 * test's own, `send-keys` types, `capture-pane` reads the screen as the user sees it.
 */
class TmuxClient {
  private readonly socket: string;
  readonly exitFile: string;

  constructor(
    dir: string,
    readonly name: string,
    args: readonly string[],
  ) {
    mkdirSync(dir, { recursive: true });
    this.socket = join(dir, `${name}.tmux`);
    this.exitFile = join(dir, `${name}.exit`);
    const command = [process.execPath, CLIENT_MAIN, ...args].map((a) => `'${a}'`).join(' ');
    this.tmux('new-session', '-d', '-x', '110', '-y', '40', `cd '${dir}' && ${command}; echo $? > '${this.exitFile}'`);
  }

  private tmux(...args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, '-f', '/dev/null', ...args], { encoding: 'utf8', timeout: 10_000 });
  }

  /** Types `keys` (tmux key names such as `Enter`, `Tab`, `Up`, `C-c`, or literal text). */
  keys(...keys: string[]): void {
    this.tmux('send-keys', ...keys);
  }

  /** Literal text, never read as key names. */
  type(text: string): void {
    this.tmux('send-keys', '-l', text);
  }

  /** The screen and its scrollback, each row without trailing blanks, trailing blank rows dropped. */
  screen(scrollback = true): string {
    return this.tmux('capture-pane', '-p', '-J', ...(scrollback ? ['-S', '-200'] : []))
      .split('\n')
      .map((row) => row.trimEnd())
      .join('\n')
      .replace(/\n+$/, '');
  }

  async waitScreen(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (pattern.test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} on screen:\n${screen}`);
      await sleep(50);
    }
  }

  async exitCode(timeoutMs = 20_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(this.exitFile) || readFileSync(this.exitFile, 'utf8').trim() === '') {
      if (Date.now() > deadline) throw new Error(`${this.name} did not exit; screen:\n${this.screen()}`);
      await sleep(50);
    }
    return Number(readFileSync(this.exitFile, 'utf8').trim());
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone with its only session
    }
  }
}

/** The last non-blank line of the screen: where the prompt is. */
const lastLine = (screen: string) => screen.split('\n').pop() ?? '';

describe('client shell in a pseudo-terminal', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const terminals: TmuxClient[] = [];
  const procs: Proc[] = [];
  let runs = 0;

  const terminal = async (name: string, extra: string[] = [], dataName = name) => {
    const dir = join(net.dir, name);
    const t = new TmuxClient(dir, `${name}-${++runs}`, [
      `127.0.0.1:${await freePort()}`,
      net.infoFile,
      '--data-dir',
      join(net.dir, dataName, '.state'),
      ...extra,
    ]);
    terminals.push(t);
    await t.waitScreen(/\$>$/m);
    return t;
  };

  /** Runs a typed command and waits for its answer, then for the next prompt. */
  const run = async (t: TmuxClient, line: string, answer: RegExp) => {
    t.type(line);
    t.keys('Enter');
    await t.waitScreen(answer);
    await t.waitScreen(/\$>$/);
  };

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker'));
  }, 30_000);

  afterAll(async () => {
    terminals.forEach((t) => t.kill());
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('asks for a left-out password without echo, and the password never reaches the screen or the history', async () => {
    const t = await terminal('pat');
    t.type('create_user pat');
    t.keys('Enter');
    await t.waitScreen(/^password:$/m);
    t.type('Hunter2-secret');
    t.keys('Enter');
    await t.waitScreen(/user pat created/);
    t.type('login pat');
    t.keys('Enter');
    await t.waitScreen(/login pat\npassword:$/);
    t.type('Hunter2-secret');
    t.keys('Enter');
    await t.waitScreen(/logged in as pat/);
    await t.waitScreen(/\$>$/);
    // Up twice: `login pat`, then `create_user pat`; never the password typed at `password: `
    t.keys('Up', 'Up');
    await t.waitScreen(/\$> create_user pat$/);
    t.keys('C-u');
    expect(t.screen()).not.toMatch(/Hunter2/);
    // Ctrl-C at `password: ` gives up on that command only
    t.type('create_user pat2');
    t.keys('Enter');
    await t.waitScreen(/create_user pat2\npassword:$/);
    t.type('half');
    t.keys('C-c');
    await t.waitScreen(/no password given; create_user not sent\n\$>$/);
    t.type('quit');
    t.keys('Enter');
    expect(await t.exitCode()).toBe(0);
    const history = join(net.dir, 'pat', '.state', 'history');
    expect(readFileSync(history, 'utf8')).not.toMatch(/Hunter2/);
  }, 60_000);

  it('keeps the history across runs in the data dir (0600), a typed password left out', async () => {
    const first = await terminal('hal');
    await run(first, 'create_user hal pass-on-the-line', /user hal created/);
    await run(first, 'login hal pass-on-the-line', /logged in as hal/);
    await run(first, 'create_group hals', /group hals created/);
    first.type('exit');
    first.keys('Enter');
    expect(await first.exitCode()).toBe(0);
    const history = join(net.dir, 'hal', '.state', 'history');
    expect(statSync(history).mode & 0o777).toBe(0o600);
    const kept = readFileSync(history, 'utf8');
    expect(kept).toBe('create_user hal\nlogin hal\ncreate_group hals\nexit\n');

    const second = await terminal('hal');
    second.keys('Up', 'Up');
    await second.waitScreen(/\$> create_group hals$/);
    second.keys('Up');
    await second.waitScreen(/\$> login hal$/);
    second.keys('C-u');
    second.type('exit');
    second.keys('Enter');
    expect(await second.exitCode()).toBe(0);
  }, 60_000);

  it('completes command names, then the group names it has seen, with Tab', async () => {
    const t = await terminal('tab');
    await run(t, 'create_user tab pw', /user tab created/);
    await run(t, 'login tab pw', /logged in as tab/);
    await run(t, 'create_group tabgroup', /group tabgroup created/);
    t.type('list_gr');
    t.keys('Tab');
    await t.waitScreen(/\$> list_groups$/);
    t.keys('Enter');
    await t.waitScreen(/tabgroup owner=tab/);
    await t.waitScreen(/\$>$/);
    t.type('list_files tabg');
    t.keys('Tab');
    await t.waitScreen(/\$> list_files tabgroup$/);
    t.keys('C-u');
    t.type('exit');
    t.keys('Enter');
    expect(await t.exitCode()).toBe(0);
  }, 60_000);

  it('shows a live progress line, then prints a notice that arrives while a line is typed above it, and redraws the prompt with that line', async () => {
    // a seeder on pipes, a downloader in the terminal whose download is slowed down to take a few seconds
    const seedPort = await freePort();
    const seeder = startClientIn(net.dir, net.infoFile, 'sam', seedPort);
    procs.push(seeder.proc);
    randomFile(join(seeder.dir, 'big.bin'), 3 * 1024 * 1024);
    await seeder.proc.run('create_user sam pw', /user sam created/);
    await seeder.proc.run('login sam pw', /logged in as sam/);
    await seeder.proc.run('create_group swarm', /group swarm created/);
    const t = await terminal('dan', ['--download-limit', '1M']);
    await run(t, 'create_user dan pw', /user dan created/);
    await run(t, 'login dan pw', /logged in as dan/);
    await run(t, 'join_group swarm', /asked to join/);
    await seeder.proc.run('accept_request swarm dan', /dan is now a member/);
    await seeder.proc.run('upload_file swarm big.bin', /shared big\.bin/);

    await run(t, 'download_file swarm big.bin copy.bin', /downloading big\.bin/);
    // while it runs, its live line sits right above the prompt: percent, bytes of the total, speed, peers
    await t.waitScreen(
      /^big\.bin \d+\.\d% [\d.]+ (B|KiB|MiB) of 3\.0 MiB, [\d.]+ (B|KiB|MiB)\/s, 1 peer[^\n]*\n\$>/m,
      30_000,
    );
    // a half-typed line longer than the 110-column terminal: it wraps onto a second row
    const typed = `list_files${' '.repeat(110)}swa`;
    t.type(typed);
    // the download ends while that line sits half typed at the prompt (capture-pane -J joins the wrapped rows)
    const screen = await t.waitScreen(/downloaded .*big\.bin[^\n]*\n(.*\n)*\$> list_files +swa$/, 60_000);
    const rows = screen.split('\n');
    expect(lastLine(screen)).toBe(`$> ${typed}`);
    // and nothing of the prompt was left behind above the notice, and the live line went with the download
    expect(screen.match(/list_files/g)).toHaveLength(1);
    expect(screen).not.toMatch(/^big\.bin \d+\.\d%/m);
    // the notice is on a line of its own, not glued to the typed text
    expect(rows.find((r) => /downloaded .*big\.bin/.test(r))).not.toMatch(/\$>/);
    // the cursor is still at the end of the typed text: typing goes on where it was
    t.type('rm');
    t.keys('Enter');
    await t.waitScreen(/big\.bin size=/);
    t.type('exit');
    t.keys('Enter');
    expect(await t.exitCode()).toBe(0);
  }, 90_000);

  it('clears a half-typed line on Ctrl-C and exits 130 on Ctrl-C at an empty prompt', async () => {
    const t = await terminal('cc');
    t.type('half typed line');
    await t.waitScreen(/\$> half typed line$/);
    t.keys('C-c');
    await t.waitScreen(/\$>$/);
    // the visible rows (tmux's scrollback may keep a copy of a row readline redrew): the start-up lines, then the
    // prompt alone
    const rows = t.screen(false).split('\n');
    expect(rows[rows.length - 1]).toBe('$>');
    expect(rows.join('\n')).not.toContain('half typed');
    t.keys('C-c');
    expect(await t.exitCode()).toBe(130);
  }, 60_000);
});
