/** The shell's input and the stream readline echoes to and prompts on; tests pass their own. */
export const SHELL_IO = Symbol('SHELL_IO');

export interface ShellIo {
  readonly input: NodeJS.ReadableStream;
  /** Receives the prompt and readline's echo; only used when interactive. */
  readonly output: NodeJS.WritableStream;
  /** Terminal input: prompt `$> `, line editing and history. Otherwise one command per line, no prompt. */
  readonly interactive: boolean;
}

export const processShellIo = (): ShellIo => ({
  input: process.stdin,
  output: process.stdout,
  interactive: process.stdin.isTTY === true,
});
