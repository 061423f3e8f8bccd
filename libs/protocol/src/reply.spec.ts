import fc from 'fast-check';
import { ProtocolError } from './errors';
import { FrameDecoder } from './framing';
import { errReply, formatReply, okReply, parseReplyHeader, Reply, ReplyAssembler } from './reply';

function decode(text: string): Reply[] {
  const dec = new FrameDecoder();
  dec.push(Buffer.from(text));
  const asm = new ReplyAssembler();
  const out: Reply[] = [];
  for (let f = dec.next(); f; f = dec.next()) {
    if (f.type !== 'line') throw new Error('unexpected frame');
    const r = asm.push(f.line);
    if (r) out.push(r);
  }
  return out;
}

describe('replies', () => {
  it('formats success with its body line count and errors with their code', () => {
    expect(formatReply(okReply('2 groups', ['g1', 'g2']))).toBe('OK 2 2 groups\ng1\ng2\n');
    expect(formatReply(okReply('done'))).toBe('OK 0 done\n');
    expect(formatReply(okReply('a\tb', ['x\ry', 'plain', 'z\x00\x01\x7f!']))).toBe('OK 3 a b\nx y\nplain\nz !\n');
    expect(formatReply(errReply('WRONG_PASSWORD', 'wrong password for alice'))).toBe(
      'ERR WRONG_PASSWORD wrong password for alice\n',
    );
  });

  it('never lets a message break the framing', () => {
    expect(formatReply(okReply('a\nb', ['c\r\nd']))).toBe('OK 1 a b\nc d\n');
  });

  it('round-trips any sequence of replies', () => {
    const text = fc.string({ maxLength: 30 }).map((s) => s.replace(/[\x00-\x1f\x7f]+/g, ' '));
    const reply = fc.oneof(
      fc.record({ ok: fc.constant(true as const), message: text, lines: fc.array(text, { maxLength: 5 }) }),
      fc.record({ ok: fc.constant(false as const), code: fc.stringMatching(/^[A-Z][A-Z0-9_]{0,15}$/), message: text }),
    );
    fc.assert(
      fc.property(fc.array(reply, { maxLength: 10 }), (replies) => {
        expect(decode(replies.map(formatReply).join(''))).toEqual(replies);
      }),
    );
  });

  it('throws a ProtocolError on a line that is not a reply header', () => {
    expect(() => parseReplyHeader('HELLO')).toThrow(ProtocolError);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        try {
          parseReplyHeader(s);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });
});
