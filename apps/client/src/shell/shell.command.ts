import { IdentityError } from '@app/tls';
import { Inject } from '@nestjs/common';
import { CommandRunner, Option, RootCommand } from 'nest-commander';
import { join } from 'node:path';
import * as readline from 'node:readline';
import { Writable } from 'node:stream';
import { EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, StartupError } from '../client.errors';
import {
  ClientOptions,
  ENV_DATA_DIR,
  ENV_DOWNLOAD_LIMIT,
  ENV_LOG_LEVEL,
  ENV_NO_TLS,
  ENV_PARTIAL_SEEDING,
  ENV_UPLOAD_LIMIT,
  NO_TLS_WARNING,
} from '../config/client.config';
import { ClientConfigService } from '../config/client-config.service';
import { ClientIdentityService } from '../config/client-identity.service';
import { DownloadManager } from '../downloads/download.manager';
import { SharingService } from '../seeding/sharing.service';
import { LiveTerminalOutput } from '../output/live-terminal.output';
import { OUTPUT, OutputPort } from '../output/output.port';
import { ChunkServerListenError } from '../seeding/seeding.errors';
import { TrackerClient } from '../tracker/tracker.client';
import { TrackerUnreachableError } from '../tracker/tracker.errors';
import { complete } from './completer';
import { HistoryFile } from './history';
import { KnownNames } from './known-names.service';
import { LineSource } from './line-source';
import { SHELL_IO, ShellIo } from './shell-io';
import { ShellService } from './shell.service';

export const PROMPT = '$> ';

/**
 * `client <IP:PORT> <tracker_info_file> [--data-dir DIR]`: loads the config,
 * connects to a tracker, then runs the `$>` loop until `exit` or end of input.
 * Start-up failures are thrown as StartupError for main.ts to report.
 */
@RootCommand({
  name: 'client',
  arguments: '<address> <tracker_info_file>',
  argsDescription: {
    address: 'IP:PORT this client serves file chunks on',
    tracker_info_file: 'file listing the trackers, one IP:PORT per line',
  },
  description: 'p2p-share client shell',
})
export class ShellCommand extends CommandRunner {
  constructor(
    private readonly config: ClientConfigService,
    private readonly tracker: TrackerClient,
    private readonly shell: ShellService,
    private readonly sharing: SharingService,
    private readonly downloads: DownloadManager,
    @Inject(SHELL_IO) private readonly io: ShellIo,
    @Inject(OUTPUT) private readonly out: OutputPort,
    private readonly names: KnownNames,
    private readonly identity: ClientIdentityService,
  ) {
    super();
  }

  @Option({ flags: '--data-dir <dir>', description: `directory for downloads and seeding state (env ${ENV_DATA_DIR})` })
  parseDataDir(value: string): string {
    return value;
  }

  // transfer settings (checked in parseClientArgs; `set` changes them at run time)
  @Option({
    flags: '--upload-limit <rate>',
    description: `cap on upload speed to other peers, e.g. 500K or 5M per second; 0: none (env ${ENV_UPLOAD_LIMIT})`,
  })
  parseUploadLimit(value: string): string {
    return value;
  }

  @Option({
    flags: '--download-limit <rate>',
    description: `cap on download speed over all downloads, e.g. 500K or 5M per second; 0: none (env ${ENV_DOWNLOAD_LIMIT})`,
  })
  parseDownloadLimit(value: string): string {
    return value;
  }

  // declared before --no-partial-seeding, so that neither flag given leaves the choice to the environment
  @Option({ flags: '--partial-seeding', description: 'serve verified chunks of downloads in progress (the default)' })
  parsePartialSeeding(): boolean {
    return true;
  }

  @Option({
    flags: '--no-partial-seeding',
    description: `serve a download only once it is complete (env ${ENV_PARTIAL_SEEDING}=off)`,
  })
  parseNoPartialSeeding(): boolean {
    return false;
  }

  // chunk server limits (checked in parseClientArgs)
  @Option({ flags: '--max-peer-conns <n>', description: 'connections served at once (default 512)' })
  parseMaxPeerConns(value: string): string {
    return value;
  }

  @Option({ flags: '--max-peer-conns-per-ip <n>', description: 'connections served at once per address (default 8)' })
  parseMaxPeerConnsPerIp(value: string): string {
    return value;
  }

  @Option({
    flags: '--peer-request-timeout <time>',
    description: 'a new connection must get a chunk within this, e.g. 5s (default 5s; 0: none)',
  })
  parsePeerRequestTimeout(value: string): string {
    return value;
  }

  @Option({
    flags: '--peer-line-timeout <time>',
    description: 'a started request line must be complete within this (default 5s; 0: none)',
  })
  parsePeerLineTimeout(value: string): string {
    return value;
  }

  @Option({
    flags: '--peer-idle-timeout <time>',
    description: 'close a peer connection idle this long (default 60s; 0: never)',
  })
  parsePeerIdleTimeout(value: string): string {
    return value;
  }

  @Option({
    flags: '--capability-skew <duration>',
    description: 'how long after expiry a download capability is still honoured, for clock skew (default 60s)',
  })
  parseCapabilitySkew(value: string): string {
    return value;
  }

  @Option({
    flags: '--stall-timeout <duration>',
    description: 'a download fails after this long without a verified chunk, e.g. 30s or 1h (default 10m; 0: never)',
  })
  parseStallTimeout(value: string): string {
    return value;
  }

  @Option({
    flags: '--metrics-port <port>',
    description: 'serve Prometheus /metrics on this port (env P2P_METRICS_PORT)',
  })
  parseMetricsPort(value: string): string {
    return value;
  }

  @Option({
    flags: '--log-level <level>',
    description: `what the client logs on stderr: off, error, warn, info, debug or verbose (default off; env ${ENV_LOG_LEVEL})`,
  })
  parseLogLevel(value: string): string {
    return value;
  }

  @Option({
    flags: '--no-tls',
    description:
      `talk to trackers in plain text, for trackers that speak no TLS: passwords, tokens and file bytes cross the ` +
      `network in clear (env ${ENV_NO_TLS}=1)`,
  })
  parseNoTls(): boolean {
    return false;
  }

  @Option({
    flags: '--print-fingerprint',
    description: "print this client's certificate fingerprint (made in the data directory if missing) and exit",
  })
  parsePrintFingerprint(): boolean {
    return true;
  }

  async run(params: string[], options: ClientOptions = {}): Promise<void> {
    const config = this.config.load(params, options);
    let fingerprint: string;
    try {
      fingerprint = this.identity.get().fingerprint;
    } catch (err) {
      if (err instanceof IdentityError) throw new StartupError(err.message, EXIT_USAGE);
      throw err;
    }
    if (options.printFingerprint) {
      this.io.output.write(`${fingerprint}\n`);
      return;
    }
    if (config.noTls) this.out.line(NO_TLS_WARNING);
    this.out.line(`your fingerprint: ${fingerprint}`);
    process.on('SIGINT', this.interrupt);
    try {
      await this.runShell();
    } finally {
      process.off('SIGINT', this.interrupt);
    }
  }

  /** Closes the `$>` loop when Ctrl-C stops the client. */
  private closeInput: (() => void) | undefined;
  private interrupts = 0;

  /**
   * Ctrl-C (at the prompt, or a SIGINT): the first stops the running downloads, keeping their `.part` files and chunk
   * records (they continue at the next login), and leaves; a second leaves at once, leaving the files as they are.
   */
  private readonly interrupt = (): void => {
    if (++this.interrupts > 1) {
      this.out.line('stopped at once; the .part files stay and resume at the next login');
      process.exit(EXIT_INTERRUPTED);
    }
    process.exitCode = EXIT_INTERRUPTED;
    const running = this.downloads.downloads.filter((d) => d.job.progress.state === 'downloading').length;
    if (running > 0) {
      this.out.line(
        `stopping ${running} download${running === 1 ? '' : 's'}; ${running === 1 ? 'its' : 'their'} .part ` +
          `files stay and resume at the next login (Ctrl-C again quits at once)`,
      );
    }
    this.downloads.cancelAll();
    this.closeInput?.();
  };

  private async runShell(): Promise<void> {
    try {
      await this.sharing.start();
    } catch (err) {
      if (err instanceof ChunkServerListenError) throw new StartupError(err.message, EXIT_FAILURE);
      throw err;
    }
    try {
      try {
        await this.tracker.connect();
      } catch (err) {
        if (err instanceof TrackerUnreachableError) throw new StartupError(err.message, EXIT_FAILURE);
        throw err;
      }
      if (this.interrupts === 0) await this.loop();
      await this.finishDownloads();
      this.reportFailures();
    } finally {
      this.tracker.close();
      await this.sharing.stop();
    }
  }

  /** Input is over: running downloads finish (or fail) first; Ctrl-C stops them (see `interrupt`). */
  private async finishDownloads(): Promise<void> {
    const running = this.downloads.downloads.filter((d) => d.job.progress.state === 'downloading').length;
    // even with none running, a download that just completed may still be announcing itself as seeded
    if (running > 0 && this.io.interactive) {
      this.out.line(`waiting for ${running} download${running === 1 ? '' : 's'} to finish (Ctrl-C stops them)`);
    }
    await this.downloads.idle();
  }

  /**
   * A piped script in which some command failed (or a download it started failed) exits 1 and says how many; on a
   * terminal each failure was seen as it happened and `exit` leaves with 0. Ctrl-C's 130 stands.
   */
  private reportFailures(): void {
    if (this.io.interactive || process.exitCode === EXIT_INTERRUPTED) return;
    const failedDownloads = this.downloads.downloads.filter(
      (d) => d.job.progress.state === 'failed' && !/cancel/.test(d.job.progress.reason ?? ''),
    ).length;
    this.shell.tally.failLater(failedDownloads);
    const summary = this.shell.tally.summary();
    if (summary === undefined) return;
    this.out.error(summary);
    process.exitCode = EXIT_FAILURE;
  }

  private async loop(): Promise<void> {
    const { input, output, interactive } = this.io;
    // readline echoes through this; muted while a password is typed
    let muted = false;
    let passwordCancelled = false;
    const echo = new Writable({
      write(chunk: Buffer, _enc, done) {
        if (!muted) output.write(chunk);
        done();
      },
    });
    Object.defineProperty(echo, 'columns', { get: () => (output as { columns?: number }).columns });
    const history = interactive ? new HistoryFile(join(this.config.get().dataDir, 'history')) : undefined;
    const rl = readline.createInterface({
      input,
      output: interactive ? echo : undefined,
      terminal: interactive,
      prompt: PROMPT,
      historySize: 1000,
      history: history?.load() ?? [],
      removeHistoryDuplicates: true,
      completer: interactive
        ? (line: string): [string[], string] => complete(line, this.shell.commands, this.names)
        : undefined,
    });
    const screen = interactive && this.out instanceof LiveTerminalOutput ? this.out : undefined;
    const columns = () => (output as { columns?: number }).columns ?? 80;
    let waiting = false;
    rl.on('line', (line: string) => {
      waiting = false;
      const recent = (rl as unknown as { history: string[] }).history;
      if (muted) {
        // a password: never in the history, and the newline readline's muted echo did not show
        if (recent[0] === line) recent.shift();
        output.write('\r\n');
        return;
      }
      const kept = history?.add(line);
      if (recent[0] === line) {
        if (kept === undefined) recent.shift();
        else recent[0] = kept;
      }
      screen?.promptLeft({
        text: `${PROMPT}${line}`,
        rows: Math.floor((PROMPT.length + line.length) / columns()) + 1,
      });
    });
    const lines = new LineSource(rl);
    // on a terminal, a left-out password is asked for without echo
    this.shell.hiddenPrompt = interactive
      ? async (question) => {
          output.write(question);
          muted = true;
          passwordCancelled = false;
          try {
            const password = await lines.next();
            return passwordCancelled ? undefined : password;
          } finally {
            muted = false;
          }
        }
      : undefined;
    const view = {
      cursorRow: () => rl.getCursorPos().rows,
      redraw: () => {
        output.write(`${PROMPT}${rl.line}`);
        const total = PROMPT.length + rl.line.length;
        const at = rl.getCursorPos();
        readline.moveCursor(output, at.cols - (total % columns()), at.rows - Math.floor(total / columns()));
      },
    };
    // Ctrl-C at the prompt (a terminal's, which readline reads as a key): a half-typed line is cleared, as shells do;
    // on an empty line it is the same as a SIGINT
    rl.on('SIGINT', () => {
      if (muted) {
        // Ctrl-C at `password: ` gives up on the command, not on the client
        passwordCancelled = true;
        rl.write('', { ctrl: true, name: 'e' });
        rl.write('', { ctrl: true, name: 'u' });
        rl.write('\r');
        return;
      }
      if (waiting && rl.line !== '') {
        rl.write('', { ctrl: true, name: 'e' });
        rl.write('', { ctrl: true, name: 'u' });
        return;
      }
      this.interrupt();
    });
    this.closeInput = () => rl.close();
    try {
      for (;;) {
        if (interactive) {
          waiting = true;
          rl.prompt();
          screen?.promptShown(view);
        }
        const line = await lines.next();
        if (line === undefined) {
          screen?.promptLeft();
          if (interactive) output.write('\n');
          return;
        }
        if ((await this.shell.execute(line)) === 'exit') return;
      }
    } finally {
      this.closeInput = undefined;
      this.shell.hiddenPrompt = undefined;
      rl.close();
    }
  }
}
