import { COMMAND_SPECS, CommandName, commandFromTokens, formatCommand, Reply, tokenize, usage } from '@app/protocol';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { basename } from 'node:path';
import { OUTPUT, OutputPort } from '../output/output.port';
import { TrackerClient } from '../tracker/tracker.client';
import { COMMAND_EXAMPLES } from './command-examples';
import { didYouMean } from './did-you-mean';
import { ExitTally } from './exit-tally';
import { expandHome } from './home-path';
import { KnownNames } from './known-names.service';
import { LOCAL_COMMANDS, LocalCommand } from '../commands/local-command';

export type ShellOutcome = 'continue' | 'exit';

/** Tracker commands the client sends by itself and a user never types. */
const INTERNAL_COMMANDS = new Set<CommandName>(['new_seeder', 'resume']);

/** Commands whose second argument is a password: left out on a terminal, it is asked for without echo. */
const PASSWORD_COMMANDS = new Set(['login', 'create_user']);

/** Asks for a line without echoing it (a terminal only). */
export type HiddenPrompt = (prompt: string) => Promise<string | undefined>;

interface ShellEntry {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  readonly args: readonly string[];
  /** Checks the arguments (throwing a `usage: ...` error), then runs. */
  run(args: readonly string[]): Promise<ShellOutcome | void>;
}

/**
 * Runs one shell line: tokenises it, finds the command in a table built from
 * COMMAND_SPECS (forwarded to the tracker), the LOCAL_COMMANDS (run here) and
 * the built-ins `help` and `exit`, and prints the answer. Never throws: every
 * failure becomes one `error:` line.
 */
@Injectable()
export class ShellService {
  private readonly table = new Map<string, ShellEntry>();
  /** Commands run and failed, for the exit status. */
  readonly tally = new ExitTally();
  /** Set on a terminal: how a left-out password is asked for. */
  hiddenPrompt: HiddenPrompt | undefined;
  /** Whether the command being run printed a failure. */
  private failedNow = false;

  constructor(
    private readonly tracker: TrackerClient,
    @Inject(OUTPUT) private readonly out: OutputPort,
    @Inject(LOCAL_COMMANDS) local: readonly LocalCommand[],
    // optional: a module that only runs commands (no completion) gets a names list of its own
    @Optional() private readonly names: KnownNames = new KnownNames(),
  ) {
    const localByName = new Map(local.map((cmd) => [cmd.name, cmd]));
    for (const name of Object.keys(COMMAND_SPECS) as CommandName[]) {
      if (INTERNAL_COMMANDS.has(name)) continue;
      const override = localByName.get(name);
      this.add(override ? localEntry(override) : this.forwarded(name));
      localByName.delete(name);
    }
    localByName.forEach((cmd) => this.add(localEntry(cmd)));
    this.add({
      name: 'help',
      usage: 'help [<command>]',
      summary: 'list the commands, or show how to use one',
      args: ['command'],
      run: (args) => {
        if (args.length > 1) throw new ShellError('usage: help [<command>]');
        return Promise.resolve(args.length === 0 ? this.help() : this.helpFor(args[0]));
      },
    });
    this.add(builtin('exit', 'leave the client', () => 'exit'));
    this.add(builtin('quit', 'leave the client (same as exit)', () => 'exit'));
  }

  /** Every command the shell knows, in help order. */
  get commands(): readonly { name: string; usage: string; summary: string; args: readonly string[] }[] {
    return [...this.table.values()].map(({ name, usage, summary, args }) => ({ name, usage, summary, args }));
  }

  async execute(line: string): Promise<ShellOutcome> {
    let tokens: string[];
    try {
      tokens = tokenize(line);
    } catch (err) {
      this.fail(err);
      return 'continue';
    }
    const [name, ...args] = tokens;
    if (name === undefined) return 'continue';
    this.failedNow = false;
    try {
      const entry = this.table.get(name);
      if (!entry) {
        const near = didYouMean(name, [...this.table.keys()]);
        throw new ShellError(`unknown command '${name}'${near ? `; did you mean ${near}?` : ''} (type help)`);
      }
      if (PASSWORD_COMMANDS.has(name) && args.length === 1) await this.askPassword(entry, args);
      const outcome = (await entry.run(args)) ?? 'continue';
      this.remember(name, args);
      this.tally.record(!this.failedNow);
      return outcome;
    } catch (err) {
      this.fail(err);
      return 'continue';
    }
  }

  private fail(err: unknown): void {
    this.out.error(err instanceof Error ? err.message : String(err));
    this.tally.record(false);
  }

  /** `login alice` on a terminal: the password is asked for without echo and added to the arguments. */
  private async askPassword(entry: ShellEntry, args: string[]): Promise<void> {
    if (!this.hiddenPrompt) {
      throw new ShellError(`usage: ${entry.usage} (the password must be on the line when input is not a terminal)`);
    }
    const password = await this.hiddenPrompt('password: ');
    if (password === undefined || password === '') throw new ShellError(`no password given; ${entry.name} not sent`);
    args.push(password);
  }

  /** Names for Tab completion: the groups and files of the user's own uploads and downloads. */
  private remember(name: string, args: readonly string[]): void {
    if (name === 'upload_file' && args.length >= 2) {
      this.names.addGroup(args[0]);
      this.names.addFile(basename(args[1]));
    } else if (['download_file', 'list_files', 'create_group', 'join_group'].includes(name) && args.length >= 1) {
      this.names.addGroup(args[0]);
      if (name === 'download_file' && args.length >= 2) this.names.addFile(args[1]);
    }
  }

  private add(entry: ShellEntry): void {
    if (this.table.has(entry.name)) throw new Error(`shell command '${entry.name}' is defined twice`);
    this.table.set(entry.name, entry);
  }

  /** A tracker command sent as typed; `commandFromTokens` checks the arguments. */
  private forwarded(name: CommandName): ShellEntry {
    return {
      name,
      usage: usage(name),
      summary: COMMAND_SPECS[name].summary,
      args: COMMAND_SPECS[name].args,
      run: async (args) => this.print(name, await this.tracker.request(formatCommand(commandFromTokens(name, args)))),
    };
  }

  private print(name: CommandName, reply: Reply): void {
    if (!reply.ok) {
      this.failedNow = true;
      this.out.error(reply.message || reply.code);
      return;
    }
    if (reply.message !== '') this.out.line(reply.message);
    reply.lines.forEach((l) => this.out.line(l));
    // names for Tab completion: the first word of each `list_groups` line, the file name of each `list_files` line
    if (name === 'list_groups' || name === 'list_files') {
      for (const l of reply.lines) {
        let first: string | undefined;
        try {
          first = tokenize(l)[0];
        } catch {
          continue;
        }
        if (first === undefined) continue;
        if (name === 'list_groups') this.names.addGroup(first);
        else this.names.addFile(first);
      }
    }
  }

  private help(): void {
    const rows = this.commands;
    const width = Math.max(...rows.map((r) => r.usage.length));
    this.out.line('commands:');
    rows.forEach((r) => this.out.line(`  ${r.usage.padEnd(width)}  ${r.summary}`));
    this.out.line('help <command> shows how to use one');
  }

  private helpFor(name: string): void {
    const entry = this.table.get(name);
    if (!entry) {
      const near = didYouMean(name, [...this.table.keys()]);
      throw new ShellError(`no command '${name}'${near ? `; did you mean ${near}?` : ''} (type help)`);
    }
    this.out.line(`usage: ${entry.usage}`);
    this.out.line(`  ${entry.summary}`);
    const example = COMMAND_EXAMPLES[name];
    if (example !== undefined) this.out.line(`example: ${example}`);
  }
}

/** A mistake in what the user typed; its message is printed as is. */
export class ShellError extends Error {
  override readonly name = 'ShellError';
}

function localEntry(cmd: LocalCommand): ShellEntry {
  const optional = cmd.optional ?? [];
  // Same format as `usage` from @app/protocol.
  const shown = [
    cmd.name,
    ...cmd.args.map((a) => `<${a}>`),
    ...optional.map((a) => (a.startsWith('--') ? `[${a}]` : `[<${a}>]`)),
  ].join(' ');
  const names = [...cmd.args, ...optional];
  const takesPath = names.some((a) => a.endsWith('_path'));
  return {
    name: cmd.name,
    usage: shown,
    summary: cmd.summary,
    args: names,
    run: (args) => {
      if (args.length < cmd.args.length || args.length > cmd.args.length + optional.length) {
        const hint =
          takesPath && args.length > names.length ? '; a path with spaces must be quoted: "my file.pdf"' : '';
        throw new ShellError(`usage: ${shown}${hint}`);
      }
      // `~` and `~/...` in local paths, as a shell expands them
      return cmd.run(args.map((a, i) => (names[i]?.endsWith('_path') ? expandHome(a) : a)));
    },
  };
}

/** A shell command without arguments that concerns the shell itself. */
function builtin(name: string, summary: string, run: () => ShellOutcome | void): ShellEntry {
  return {
    name,
    usage: name,
    summary,
    args: [],
    run: (args) => {
      if (args.length > 0) throw new ShellError(`usage: ${name}`);
      return Promise.resolve(run());
    },
  };
}
