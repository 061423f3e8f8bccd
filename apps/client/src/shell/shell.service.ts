import { COMMAND_SPECS, CommandName, commandFromTokens, formatCommand, Reply, tokenize, usage } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { OUTPUT, OutputPort } from '../output/output.port';
import { TrackerClient } from '../tracker/tracker.client';
import { LOCAL_COMMANDS, LocalCommand } from '../commands/local-command';

export type ShellOutcome = 'continue' | 'exit';

/** Tracker commands the client sends by itself and a user never types. */
const INTERNAL_COMMANDS = new Set<CommandName>(['new_seeder', 'resume']);

interface ShellEntry {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
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

  constructor(
    private readonly tracker: TrackerClient,
    @Inject(OUTPUT) private readonly out: OutputPort,
    @Inject(LOCAL_COMMANDS) local: readonly LocalCommand[],
  ) {
    const localByName = new Map(local.map((cmd) => [cmd.name, cmd]));
    for (const name of Object.keys(COMMAND_SPECS) as CommandName[]) {
      if (INTERNAL_COMMANDS.has(name)) continue;
      const override = localByName.get(name);
      this.add(override ? localEntry(override) : this.forwarded(name));
      localByName.delete(name);
    }
    localByName.forEach((cmd) => this.add(localEntry(cmd)));
    this.add(builtin('help', 'list the commands', () => this.help()));
    this.add(builtin('exit', 'leave the client', () => 'exit'));
  }

  /** Every command the shell knows, in help order. */
  get commands(): readonly { name: string; usage: string; summary: string }[] {
    return [...this.table.values()].map(({ name, usage, summary }) => ({ name, usage, summary }));
  }

  async execute(line: string): Promise<ShellOutcome> {
    try {
      const [name, ...args] = tokenize(line);
      if (name === undefined) return 'continue';
      const entry = this.table.get(name);
      if (!entry) throw new ShellError(`unknown command '${name}' (type help)`);
      return (await entry.run(args)) ?? 'continue';
    } catch (err) {
      this.out.error(err instanceof Error ? err.message : String(err));
      return 'continue';
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
      run: async (args) => this.print(await this.tracker.request(formatCommand(commandFromTokens(name, args)))),
    };
  }

  private print(reply: Reply): void {
    if (!reply.ok) {
      this.out.error(reply.message || reply.code);
      return;
    }
    if (reply.message !== '') this.out.line(reply.message);
    reply.lines.forEach((l) => this.out.line(l));
  }

  private help(): void {
    const rows = this.commands;
    const width = Math.max(...rows.map((r) => r.usage.length));
    this.out.line('commands:');
    rows.forEach((r) => this.out.line(`  ${r.usage.padEnd(width)}  ${r.summary}`));
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
  return {
    name: cmd.name,
    usage: shown,
    summary: cmd.summary,
    run: (args) => {
      if (args.length < cmd.args.length || args.length > cmd.args.length + optional.length) {
        throw new ShellError(`usage: ${shown}`);
      }
      return cmd.run(args);
    },
  };
}

/** A shell command without arguments that concerns the shell itself. */
function builtin(name: string, summary: string, run: () => ShellOutcome | void): ShellEntry {
  return {
    name,
    usage: name,
    summary,
    run: (args) => {
      if (args.length > 0) throw new ShellError(`usage: ${name}`);
      return Promise.resolve(run());
    },
  };
}
