import { escapeForTerminal } from '@app/protocol';
import { TerminalOutput } from './output.port';

/** The shell's prompt as the output sees it while it waits for a line (see ShellCommand). */
export interface PromptView {
  /** Rows from the prompt's first row down to the cursor (the partial input may wrap). */
  cursorRow(): number;
  /** Writes the prompt and the partial input again from column 0, the cursor put back where it was. */
  redraw(): void;
}

const ERASE_DOWN = '\x1b[J';

/**
 * The client's output on a terminal: printed lines, under them the live lines (one per `progress` key, e.g. a
 * download's progress), under them the prompt with what is being typed. A line printed while the user types (a
 * download finished, a tracker went away) goes above the live lines and the prompt, which are drawn again below it,
 * the partial input and the cursor as they were. Not a terminal (`tty` false): plain lines, no live lines, exactly
 * as StreamOutput.
 */
export class LiveTerminalOutput extends TerminalOutput {
  private readonly live = new Map<string, string>();
  private prompt: PromptView | undefined;

  constructor(
    private readonly stream: NodeJS.WritableStream & { columns?: number },
    readonly tty: boolean,
  ) {
    super();
  }

  /** The shell shows its prompt and waits for a line. */
  promptShown(view: PromptView): void {
    this.prompt = view;
  }

  /**
   * The prompt is gone: a line was entered (`echo`, the prompt and the line as typed, which the terminal now shows
   * in `rows` rows above the cursor) or input ended. The entered line is moved above the live lines.
   */
  promptLeft(echo?: { text: string; rows: number }): void {
    this.prompt = undefined;
    if (!this.tty || this.live.size === 0 || echo === undefined) return;
    this.stream.write(`${this.up(this.live.size + echo.rows)}${escapeForTerminal(echo.text)}\n${this.liveBlock()}`);
  }

  override progress(key: string, text: string | undefined): void {
    if (!this.tty) return;
    if (text === undefined && !this.live.has(key)) return;
    const erase = this.erase();
    if (text === undefined) this.live.delete(key);
    else this.live.set(key, text);
    this.stream.write(`${erase}${this.liveBlock()}`);
    this.prompt?.redraw();
  }

  protected write(safeLine: string): void {
    if (!this.tty || (this.live.size === 0 && this.prompt === undefined)) {
      this.stream.write(`${safeLine}\n`);
      return;
    }
    this.stream.write(`${this.erase()}${safeLine}\n${this.liveBlock()}`);
    this.prompt?.redraw();
  }

  /** From the cursor back to the first live line (or the prompt), cleared to the end of the screen. */
  private erase(): string {
    return this.up(this.live.size + (this.prompt?.cursorRow() ?? 0));
  }

  private up(rows: number): string {
    return `\r${rows > 0 ? `\x1b[${rows}A` : ''}${ERASE_DOWN}`;
  }

  /** Each live line cut to the terminal's width, so none wraps and the row count stays exact. */
  private liveBlock(): string {
    const width = Math.max(10, (this.stream.columns ?? 80) - 1);
    return [...this.live.values()].map((t) => `${[...escapeForTerminal(t)].slice(0, width).join('')}\n`).join('');
  }
}
