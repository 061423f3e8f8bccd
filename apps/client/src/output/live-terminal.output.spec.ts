import { PassThrough } from 'node:stream';
import { LiveTerminalOutput, PromptView } from './live-terminal.output';

describe(LiveTerminalOutput.name, () => {
  const screen = (tty: boolean) => {
    const stream = Object.assign(new PassThrough(), { columns: 40 });
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
    return { out: new LiveTerminalOutput(stream, tty), written: () => text };
  };
  const prompt = (row = 0): PromptView & { redraws: number } => {
    const view = {
      redraws: 0,
      cursorRow: () => row,
      redraw: () => void view.redraws++,
    };
    return view;
  };

  it('not on a terminal: plain lines, and no live lines at all', () => {
    const { out, written } = screen(false);
    out.line('one');
    out.progress('d1', 'big.bin 10%');
    out.error('two');
    out.progress('d1', undefined);
    expect(written()).toBe('one\nerror: two\n');
  });

  it('prints a notice above the prompt and has the prompt redrawn below it', () => {
    const { out, written } = screen(true);
    const view = prompt(0);
    out.promptShown(view);
    out.line('downloaded big.bin');
    // back to column 0, clear to the end of the screen, the notice, then the prompt again
    expect(written()).toBe('\r\x1b[Jdownloaded big.bin\n');
    expect(view.redraws).toBe(1);
  });

  it('keeps live lines under the printed lines and above the prompt, one per key, cut to the width', () => {
    const { out, written } = screen(true);
    const view = prompt(1); // the typed line wraps: the cursor is on the prompt's second row
    out.promptShown(view);
    out.progress('d1', 'big.bin 10%');
    expect(written()).toBe('\r\x1b[1A\x1b[Jbig.bin 10%\n');
    out.progress('d1', `big.bin 20% ${'x'.repeat(60)}`);
    // up over the live line and the prompt's two rows
    expect(written().endsWith(`\r\x1b[2A\x1b[Jbig.bin 20% ${'x'.repeat(27)}\n`)).toBe(true);
    out.line('tracker went away');
    expect(written().endsWith(`\r\x1b[2A\x1b[Jtracker went away\nbig.bin 20% ${'x'.repeat(27)}\n`)).toBe(true);
    out.progress('d1', undefined);
    expect(written().endsWith('\r\x1b[2A\x1b[J')).toBe(true);
    expect(view.redraws).toBe(4);
  });

  it('moves an entered line above the live lines', () => {
    const { out, written } = screen(true);
    out.progress('d1', 'big.bin 10%');
    out.promptShown(prompt(0));
    out.promptLeft({ text: '$> list_groups', rows: 1 });
    expect(written().endsWith('\r\x1b[2A\x1b[J$> list_groups\nbig.bin 10%\n')).toBe(true);
    // no prompt now: a line goes above the live line only
    out.line('team owner=a');
    expect(written().endsWith('\r\x1b[1A\x1b[Jteam owner=a\nbig.bin 10%\n')).toBe(true);
  });

  it('never lets a control character in a live line reach the terminal', () => {
    const { out, written } = screen(true);
    out.progress('d1', 'evil\x1b[2J.bin');
    expect(written()).toContain('evil\\x1b[2J.bin');
  });
});
