import { escapeForTerminal } from '@app/protocol';

/** Where the shell's answers go. Everything, errors included, goes to one stream so a transcript keeps its order. */
export const OUTPUT = Symbol('OUTPUT');

export interface OutputPort {
  /** Prints one line of an answer. */
  line(text: string): void;
  /** Prints `error: <text>`. */
  error(text: string): void;
  /**
   * A live line that is redrawn in place (a download's progress): shown on a terminal, under what was printed and
   * apart from the line being typed; `undefined` takes it away. One line per `key`. Nothing is shown where the
   * output is not a terminal (a script, a file): there the end-of-download line says it all.
   */
  progress(key: string, text: string | undefined): void;
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

  /** Not a terminal by default: live lines are not shown. */
  progress(_key: string, _text: string | undefined): void {
    // nothing to redraw
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
