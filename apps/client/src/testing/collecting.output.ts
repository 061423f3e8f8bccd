import { OutputPort } from '../output/output.port';

/** Output port that keeps every printed line, errors included, in order. */
export class CollectingOutput implements OutputPort {
  readonly lines: string[] = [];

  line(text: string): void {
    this.lines.push(text);
  }

  error(text: string): void {
    this.lines.push(`error: ${text}`);
  }
}
