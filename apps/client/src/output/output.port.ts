import { escapeForTerminal } from '@app/protocol';

/** Where the shell's answers go. Everything, errors included, goes to one stream so a transcript keeps its order. */
export const OUTPUT = Symbol('OUTPUT');

export interface OutputPort {
  /** Prints one line of an answer. */
  line(text: string): void;
  /** Prints `error: <text>`. */
  error(text: string): void;
}

/**
 * The one way text reaches the user's terminal. Much of what the client prints
 * came over the wire (tracker messages and body lines, file names, user ids,
 * a seeder's refusal, why a download failed), so every line goes through
 * `escapeForTerminal` here, whoever built it: a control, bidi or invisible
 * format character is shown as a visible escape (`\x1b`, `\u{202e}`) and can
 * neither drive the terminal nor disguise a name. The client's own text has
 * none of them, so it prints unchanged. Implementations only say where an
 * already safe line goes.
 */
export abstract class TerminalOutput implements OutputPort {
  line(text: string): void {
    this.write(escapeForTerminal(text));
  }

  error(text: string): void {
    this.line(`error: ${text}`);
  }

  /** `safeLine` holds no control characters; the newline that ends it is the implementation's to add. */
  protected abstract write(safeLine: string): void;
}

export class StreamOutput extends TerminalOutput {
  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
  }

  protected write(safeLine: string): void {
    this.stream.write(`${safeLine}\n`);
  }
}
