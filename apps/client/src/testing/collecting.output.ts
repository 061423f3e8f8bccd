import { TerminalOutput } from '../output/output.port';

/** Output port that keeps every printed line, errors included, in order, escaped as the terminal gets it. */
export class CollectingOutput extends TerminalOutput {
  readonly lines: string[] = [];

  protected write(safeLine: string): void {
    this.lines.push(safeLine);
  }
}
