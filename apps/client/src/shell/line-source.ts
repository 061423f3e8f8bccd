import * as readline from 'node:readline';

/**
 * Lines of a readline interface, buffered, handed out one at a time: readline
 * emits lines as fast as input arrives, the shell takes the next only when
 * the previous answer is printed. `next()` resolves undefined at end of input.
 */
export class LineSource {
  private readonly lines: string[] = [];
  private waiter: ((line: string | undefined) => void) | undefined;
  private ended = false;

  constructor(rl: readline.Interface) {
    rl.on('line', (line) => this.deliver(line));
    rl.on('close', () => {
      this.ended = true;
      this.deliver(undefined);
    });
  }

  next(): Promise<string | undefined> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  private deliver(line: string | undefined): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter(line);
    } else if (line !== undefined) {
      this.lines.push(line);
    }
  }
}
