/**
 * A command the client runs itself instead of forwarding as typed (e.g. a
 * future `upload_file` that hashes the file before telling the tracker, or
 * `show_downloads` that never reaches it). A local command with the name of a
 * tracker command replaces the plain forwarding for that name.
 *
 * To add one: write an @Injectable() class implementing LocalCommand (inject
 * TrackerClient and OUTPUT as needed), list it in its module's `*_COMMANDS` array
 * (provided and exported there), which ShellModule puts in the `inject` array of
 * its LOCAL_COMMANDS factory. This file imports
 * nothing, so the shell and every module with commands can import it without a cycle.
 */
export interface LocalCommand {
  readonly name: string;
  /** Argument names as shown in usage lines; the shell checks the count before `run`. */
  readonly args: readonly string[];
  /** Trailing arguments that may be left out, as in COMMAND_SPECS. */
  readonly optional?: readonly string[];
  readonly summary: string;
  run(args: readonly string[]): Promise<void>;
}

export const LOCAL_COMMANDS = Symbol('LOCAL_COMMANDS');
