/**
 * Characters that a name must not hold and a terminal must never receive raw:
 * C0 controls and DEL, C1 controls (`\p{Cc}`), format characters (`\p{Cf}`:
 * the bidi marks, embeddings, overrides and isolates U+061C, U+200E, U+200F,
 * U+202A-U+202E, U+2066-U+2069, the zero-width U+200B-U+200D, U+2060, U+FEFF,
 * the soft hyphen, the tag characters...), the line and paragraph separators
 * U+2028/U+2029 and lone surrogate halves. Each of them can hide or reorder
 * what a reader sees: `invoice\u202efdp.exe` shows as `invoiceexe.pdf`.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;
const UNSAFE_ALL = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;

/** True when `text` holds a control, format (bidi, zero-width) or separator character. */
export function hasUnsafeChars(text: string): boolean {
  return UNSAFE.test(text);
}

/** The first unsafe character of `text`, written as a visible escape (`\x1b`, `\u{202e}`), if any. */
export function firstUnsafeChar(text: string): string | undefined {
  const m = UNSAFE.exec(text);
  return m ? escapeChar(m[0]) : undefined;
}

function escapeChar(ch: string): string {
  const code = ch.codePointAt(0)!;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * Makes text that came from a peer or a tracker safe for a terminal: every
 * character `hasUnsafeChars` finds is replaced by a visible escape (`\x1b`,
 * `\x0a`, `\u{202e}`); everything else, printable ASCII and ordinary Unicode
 * (`résumé.pdf`, `日本語.txt`) included, is left exactly as it is. Escaping is
 * idempotent on its own output: an escape is plain printable ASCII.
 */
export function escapeForTerminal(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, escapeChar) : text;
}

/** A short, escaped sample of untrusted text for an error message: never more than `max` characters of it. */
export function excerpt(text: string, max = 32): string {
  const chars = [...text];
  const head = escapeForTerminal(chars.slice(0, max).join(''));
  return chars.length > max ? `${head}...` : head;
}

/** A file name in a group: 1-255 characters. */
export const MAX_FILE_NAME_CHARS = 255;

/**
 * Why `name` cannot name a shared file, or undefined when it can. One rule for
 * the tracker (which refuses it) and the client (which refuses before hashing):
 * 1-255 characters, no '/', not '.' or '..', and no control, bidi, zero-width
 * or other invisible format character (see `hasUnsafeChars`; '\0' is one).
 */
export function fileNameProblem(name: string): string | undefined {
  const chars = [...name].length;
  if (chars < 1 || chars > MAX_FILE_NAME_CHARS) return `a file name must be 1-${MAX_FILE_NAME_CHARS} characters`;
  if (name.includes('/')) return "a file name cannot contain '/'";
  const bad = firstUnsafeChar(name);
  if (bad !== undefined) {
    return `a file name cannot contain control, bidi or invisible format characters (it has ${bad})`;
  }
  if (name === '.' || name === '..') return `a file cannot be named '${name}'`;
  return undefined;
}
