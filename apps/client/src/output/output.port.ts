/** Where the shell's answers go. Everything, errors included, goes to one stream so a transcript keeps its order. */
export const OUTPUT = Symbol('OUTPUT');

export interface OutputPort {
  /** Prints one line of an answer. */
  line(text: string): void;
  /** Prints `error: <text>`. */
  error(text: string): void;
}

export class StreamOutput implements OutputPort {
  constructor(private readonly stream: NodeJS.WritableStream) {}

  line(text: string): void {
    this.stream.write(`${text}\n`);
  }

  error(text: string): void {
    this.line(`error: ${text}`);
  }
}
