import fc from 'fast-check';
import { ProtocolError } from './errors';
import { FrameDecoder } from './framing';
import {
  errReply,
  formatReply,
  formatReplyIn,
  LongLine,
  okReply,
  parseReplyHeader,
  renderReply,
  Reply,
  ReplyAssembler,
  ReplyLine,
  replyPieces,
  seedReplyPieces,
} from './reply';

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
  describe('in the seed form', () => {
    const seed = (reply: Reply) => formatReplyIn(reply, 'seed');
    const meta = [
      'file_name:f',
      'file_size:3',
      `file_hash:${'b'.repeat(40)}`,
      `chunk_hashes:${'a'.repeat(40)}`,
      'seeders:u',
      'seeder_ports:7001',
      'seeder_file_paths:/p',
      'seeder_hosts:h',
      'seeder_protocols:seed',
    ];

    it('is the message, then the body lines, each ending in a newline; no count, no OK', () => {
      expect(seed(okReply('2 groups', ['g1', 'g2']))).toBe('2 groups\ng1\ng2\n');
      expect(seed(okReply('user alice created'))).toBe('user alice created\n');
      expect(seed(okReply('a\tb', ['x\ry']))).toBe('a b\nx y\n');
    });

    it('says done for an empty message, error: <message> for a failure (no code)', () => {
      expect(seed(okReply(''))).toBe('done\n');
      expect(seed(errReply('LOGIN_FAILED', 'wrong user id or password'))).toBe('error: wrong user id or password\n');
      expect(seed(errReply('X', 'a\nb'))).toBe('error: a b\n');
    });

    it('shows only the message of a reply marked message (login: no token lines)', () => {
      expect(seed(okReply('logged in as alice', ['session_token:t', 'capability_key:k'], 'message'))).toBe(
        'logged in as alice\n',
      );
    });

    it('shows exactly the seven seed lines of a reply marked metadata, nothing before or after', () => {
      expect(seed(okReply('f: 3 bytes', meta, 'metadata'))).toBe(meta.slice(0, 7).join('\n') + '\n');
      // the extended form is unchanged by the hint
      expect(formatReplyIn(okReply('f: 3 bytes', meta, 'metadata'), 'extended')).toBe(
        formatReply(okReply('f: 3 bytes', meta)),
      );
      expect(formatReply(okReply('f: 3 bytes', meta, 'metadata'))).toBe(`OK 9 f: 3 bytes\n${meta.join('\n')}\n`);
    });

    it('writes a long chunk list as a latin1 piece of its own, never joined into one string', () => {
      const long = `chunk_hashes:${Array(5000).fill('a'.repeat(40)).join(',')}`;
      const lines = [...meta.slice(0, 3), long, ...meta.slice(4)];
      const pieces = seedReplyPieces(okReply('m', lines, 'metadata'));
      expect(pieces.map((p) => p.encoding)).toEqual(['utf8', 'latin1', 'utf8']);
      expect(pieces[1].text).toBe(long);
      const bytes = Buffer.concat(pieces.map((p) => Buffer.from(p.text, p.encoding))).toString('utf8');
      expect(bytes).toBe(lines.slice(0, 7).join('\n') + '\n');
      expect(renderReply(okReply('m', lines), 'extended')).toEqual(replyPieces(okReply('m', lines)));
    });
  });

  it('formats success with its body line count and errors with their code', () => {
    expect(formatReply(okReply('2 groups', ['g1', 'g2']))).toBe('OK 2 2 groups\ng1\ng2\n');
    expect(formatReply(okReply('done'))).toBe('OK 0 done\n');
    expect(formatReply(okReply('a\tb', ['x\ry', 'plain', 'z\x00\x01\x7f!']))).toBe('OK 3 a b\nx y\nplain\nz !\n');
    expect(formatReply(errReply('LOGIN_FAILED', 'wrong user id or password'))).toBe(
      'ERR LOGIN_FAILED wrong user id or password\n',
    );
  });

  describe('in pieces', () => {
    const bytes = (reply: Reply) =>
      Buffer.concat(replyPieces(reply).map((p) => Buffer.from(p.text, p.encoding))).toString('utf8');
    const long = (c: string) => c.repeat(70 * 1024);

    it('is one piece, formatReply itself, when no line is long', () => {
      const reply = okReply('2 groups', ['g1', 'g2']);
      expect(replyPieces(reply)).toEqual([{ text: formatReply(reply), encoding: 'utf8' }]);
      expect(replyPieces(errReply('X', 'y'))).toEqual([{ text: 'ERR X y\n', encoding: 'utf8' }]);
    });

    it('writes a long printable ASCII line on its own as latin1, the same bytes as formatReply', () => {
      const reply = okReply('meta', ['file_name:a', `chunk_hashes:${long('0123456789abcdef,')}`, 'seeders:x']);
      const pieces = replyPieces(reply);
      expect(pieces.map((p) => p.encoding)).toEqual(['utf8', 'latin1', 'utf8']);
      expect(bytes(reply)).toBe(formatReply(reply));
    });

    it('writes a LongLine from its chunks, produced only as they are written, the same bytes as formatReply', () => {
      let produced = 0;
      const parts = ['chunk_hashes:aa', ',bb', ',cc'];
      const line: LongLine = {
        length: parts.join('').length,
        *chunks() {
          for (const p of parts) {
            produced++;
            yield Buffer.from(p, 'latin1');
          }
        },
        toString: () => parts.join(''),
      };
      const reply = okReply<ReplyLine>('meta', ['file_name:a', line, 'seeders:x']);
      const pieces = replyPieces(reply);
      expect(produced).toBe(0);
      const written = pieces.flatMap((p) => ('chunks' in p ? [...p.chunks] : [Buffer.from(p.text, p.encoding)]));
      expect(produced).toBe(3);
      expect(Buffer.concat(written).toString('latin1')).toBe(formatReply(reply));
      expect(formatReply(reply)).toBe('OK 3 meta\nfile_name:a\nchunk_hashes:aa,bb,cc\nseeders:x\n');
    });

    it('writes long lines with control or non-ASCII characters through UTF-8, cleaned like formatReply', () => {
      for (const line of [long('é'), long('a\tb'), `${long('x')}\n${long('y')}`, long('\u{1F600}')]) {
        const reply = okReply('m\n', ['short', line, line]);
        expect(replyPieces(reply).every((p) => p.encoding === 'utf8')).toBe(true);
        expect(bytes(reply)).toBe(formatReply(reply));
      }
    });

    it('gives the bytes of formatReply for any mix of short and long lines', () => {
      const line = fc.oneof(
        fc.string({ maxLength: 20 }),
        fc.constantFrom(long('a'), long('é'), long('\x00'), long('~')),
      );
      fc.assert(
        fc.property(fc.string({ maxLength: 10 }), fc.array(line, { maxLength: 4 }), (message, lines) => {
          const reply = okReply(message, lines);
          expect(bytes(reply)).toBe(formatReply(reply));
        }),
        { numRuns: 60 },
      );
    });
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
