import fc from 'fast-check';
import { escapeForTerminal, excerpt, fileNameProblem, hasUnsafeChars } from './safe-text';

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Every character the name rule lists, by class. */
const UNSAFE_CLASSES: [string, number[]][] = [
  ['C0 controls', range(0x00, 0x1f)],
  ['DEL', [0x7f]],
  ['C1 controls', range(0x80, 0x9f)],
  [
    'bidi marks, embeddings, overrides and isolates',
    [0x061c, 0x200e, 0x200f, ...range(0x202a, 0x202e), ...range(0x2066, 0x2069)],
  ],
  ['zero-width and invisible format characters', [0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, 0x00ad, 0xe0041]],
  ['line and paragraph separators', [0x2028, 0x2029]],
];
const ALL_UNSAFE = UNSAFE_CLASSES.flatMap(([, codes]) => codes);
const chr = (code: number) => String.fromCodePoint(code);

/** Any character a terminal could act on or that reorders or hides text. */
const TERMINAL_UNSAFE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

describe('fileNameProblem', () => {
  it.each(UNSAFE_CLASSES)('refuses every one of the %s, wherever it stands in the name', (_, codes) => {
    for (const code of codes) {
      for (const name of [`a${chr(code)}b.txt`, `${chr(code)}x`, `x${chr(code)}`]) {
        expect(fileNameProblem(name)).toMatch(/control, bidi or invisible format characters/);
      }
    }
  });

  it('refuses a name of 256 characters', () => {
    expect(fileNameProblem('x'.repeat(256))).toContain('1-255 characters');
  });

  it('names the offending character as a visible escape', () => {
    expect(fileNameProblem('invoice\u202efdp.exe')).toContain('\\u{202e}');
    expect(fileNameProblem('a\x1b[31mb')).toContain('\\x1b');
  });

  it.each([
    ['/', "cannot contain '/'"],
    ['a/b', "cannot contain '/'"],
    ['\0', 'control'],
    ['a\0b', 'control'],
    ['.', "cannot be named '.'"],
    ['..', "cannot be named '..'"],
    ['', '1-255 characters'],
  ])('refuses %j', (name, why) => {
    expect(fileNameProblem(name)).toContain(why);
  });

  it.each([
    'report.pdf',
    'résumé.pdf',
    '日本語.txt',
    'my file (2).tar.gz',
    '...',
    '.hidden',
    'a\\b',
    'Ελληνικά',
    'emoji 🎉.png',
  ])('accepts %j', (name) => {
    expect(fileNameProblem(name)).toBeUndefined();
  });

  it('accepts names of 255 characters, ASCII or not', () => {
    expect(fileNameProblem('x'.repeat(255))).toBeUndefined();
    expect(fileNameProblem('日'.repeat(255))).toBeUndefined();
  });

  it('accepts exactly the names without unsafe characters, slash, or dot names', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), (name) => {
        const ok = !hasUnsafeChars(name) && !name.includes('/') && name !== '.' && name !== '..';
        expect(fileNameProblem(name) === undefined).toBe(ok);
      }),
    );
  });
});

describe('escapeForTerminal', () => {
  it('leaves printable ASCII exactly as it is', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(chr), maxLength: 200 }), (s) => {
        expect(escapeForTerminal(s)).toBe(s);
      }),
    );
  });

  it('leaves ordinary Unicode text exactly as it is', () => {
    for (const s of ['résumé.pdf', '日本語.txt', 'Ελληνικά', 'emoji 🎉', 'a\\x1b is text']) {
      expect(escapeForTerminal(s)).toBe(s);
    }
  });

  it('output never holds a control, bidi or format character, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        expect(TERMINAL_UNSAFE.test(escapeForTerminal(s))).toBe(false);
      }),
    );
  });

  it('output never holds one even when the input is built from them', () => {
    const unsafe = fc.constantFrom(...ALL_UNSAFE.map(chr));
    const mixed = fc.oneof(unsafe, fc.string({ unit: 'grapheme', maxLength: 3 }));
    fc.assert(
      fc.property(fc.array(mixed, { maxLength: 40 }), (parts) => {
        const out = escapeForTerminal(parts.join(''));
        expect(TERMINAL_UNSAFE.test(out)).toBe(false);
        expect(escapeForTerminal(out)).toBe(out);
      }),
    );
  });

  it('keeps every safe character in order and removes nothing', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (s) => {
        const kept = [...s].filter((c) => !hasUnsafeChars(c)).join('');
        const outSafe = escapeForTerminal(s).replace(/\\x[0-9a-f]{2}|\\u\{[0-9a-f]+\}/g, '');
        // escapes removed, what is left is the safe part of the input (a literal '\x..' in it is removed alike)
        expect(outSafe).toBe(kept.replace(/\\x[0-9a-f]{2}|\\u\{[0-9a-f]+\}/g, ''));
      }),
    );
  });

  it.each([
    ['\x1b[2J\x1b[31mred', '\\x1b[2J\\x1b[31mred'],
    ['invoice\u202efdp.exe', 'invoice\\u{202e}fdp.exe'],
    ['a\nb\r\tc\0', 'a\\x0ab\\x0d\\x09c\\x00'],
    ['\x9b31m', '\\x9b31m'],
    ['zero\u200bwidth\ufeff', 'zero\\u{200b}width\\u{feff}'],
    ['\u2066isolate\u2069', '\\u{2066}isolate\\u{2069}'],
  ])('%j is shown as %j', (input, shown) => {
    expect(escapeForTerminal(input)).toBe(shown);
  });
});

describe('excerpt', () => {
  it('keeps at most the first characters, escaped', () => {
    expect(excerpt('\x1b]0;owned\x07' + 'x'.repeat(100), 12)).toBe('\\x1b]0;owned\\x07xx...');
    expect(excerpt('short')).toBe('short');
  });
});
