import { PassThrough } from 'node:stream';
import { CollectingOutput } from '../testing/collecting.output';
import { StreamOutput } from './output.port';

/** Bytes a terminal acts on, or that reorder or hide text: C0, DEL, C1 (as UTF-8), bidi and zero-width characters. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;

describe(StreamOutput.name, () => {
  const printed = (write: (out: StreamOutput) => void): Buffer => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    write(new StreamOutput(stream));
    return Buffer.concat(chunks);
  };

  it('prints the client’s own text unchanged, one line each', () => {
    const text = printed((out) => {
      out.line('downloading résumé.pdf (1.2 MiB, 3 chunks) from 2 seeders to /tmp/日本語');
      out.error('usage: login <user_id> <password>');
    }).toString('utf8');
    expect(text).toBe(
      'downloading résumé.pdf (1.2 MiB, 3 chunks) from 2 seeders to /tmp/日本語\nerror: usage: login <user_id> <password>\n',
    );
  });

  it('never lets a control, bidi or zero-width character from a peer through, in lines or errors', () => {
    const hostile = 'x\x1b[2J\x1b]0;owned\x07\r\n\x9b31m\u202efdp.exe\u2066\u200b\ufeff\0';
    const bytes = printed((out) => {
      out.line(`invoice${hostile}`);
      out.error(`seeder said: ${hostile}`);
    });
    expect(bytes.includes(0x1b)).toBe(false);
    expect(bytes.includes(Buffer.from('\u202e', 'utf8'))).toBe(false);
    const text = bytes.toString('utf8');
    expect(text.split('\n')).toHaveLength(3); // two lines and the final newline: a peer's \n splits nothing
    expect(RAW_CONTROL.test(text.replace(/\n/g, ''))).toBe(false);
    expect(text).toContain('invoicex\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x0a\\x9b31m\\u{202e}fdp.exe');
    expect(text).toContain('error: seeder said: x\\x1b[2J');
  });

  it('is what the tests’ collecting output sees too', () => {
    const out = new CollectingOutput();
    out.line('a\u202eb');
    out.error('\x1b');
    expect(out.lines).toEqual(['a\\u{202e}b', 'error: \\x1b']);
  });
});
