import fc from 'fast-check';
import { ProtocolError } from './errors';
import { joinArgs, quoteArg, tokenize } from './tokenize';

describe('tokenize', () => {
  it.each([
    ['login alice secret', ['login', 'alice', 'secret']],
    ['  login\talice   secret  ', ['login', 'alice', 'secret']],
    ['upload_file g1 "my file.txt"', ['upload_file', 'g1', 'my file.txt']],
    ['x "a \\"q\\" \\\\ b" ""', ['x', 'a "q" \\ b', '']],
    ['', []],
  ])('%j', (line, tokens) => {
    expect(tokenize(line)).toEqual(tokens);
  });

  it.each(['x "open', 'x a"b', 'x "a"b', 'x "\\n"', 'x \u0001', 'x a\\b'])(
    'rejects %j with a ProtocolError',
    (line) => {
      expect(() => tokenize(line)).toThrow(ProtocolError);
    },
  );

  it('round-trips any list of arguments without control characters', () => {
    const arg = fc.string({ unit: 'grapheme', maxLength: 20 }).filter((s) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(s));
    fc.assert(
      fc.property(fc.array(arg, { minLength: 1, maxLength: 8 }), (args) => {
        expect(tokenize(joinArgs(args))).toEqual(args);
      }),
    );
  });

  it('leaves plain arguments unquoted', () => {
    expect(quoteArg('/tmp/a.bin')).toBe('/tmp/a.bin');
    expect(quoteArg('a b')).toBe('"a b"');
  });

  it('throws nothing but ProtocolError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        try {
          tokenize(s);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });
});
