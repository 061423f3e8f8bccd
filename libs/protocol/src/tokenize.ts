import { ErrorCode, ProtocolError } from './errors';

const SAFE_TOKEN = /^[^\s"\\\x00-\x1f\x7f]+$/;
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Splits a command line into arguments. Arguments are separated by spaces or
 * tabs. An argument that contains spaces is written in double quotes, with
 * `\"` and `\\` as the only escapes: `upload_file g1 "my file.txt"`.
 * Control characters are never allowed inside a line.
 */
export function tokenize(line: string): string[] {
  if (CONTROL.test(line)) {
    throw new ProtocolError(ErrorCode.BadSyntax, 'control characters are not allowed in a command line');
  }
  const tokens: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '"') {
      let out = '';
      i++;
      let closed = false;
      while (i < n) {
        const d = line[i];
        if (d === '\\') {
          const e = line[i + 1];
          if (e !== '"' && e !== '\\') {
            throw new ProtocolError(ErrorCode.BadSyntax, 'only \\" and \\\\ may be escaped inside quotes');
          }
          out += e;
          i += 2;
        } else if (d === '"') {
          closed = true;
          i++;
          break;
        } else {
          out += d;
          i++;
        }
      }
      if (!closed) throw new ProtocolError(ErrorCode.BadSyntax, 'unterminated quote');
      if (i < n && line[i] !== ' ' && line[i] !== '\t') {
        throw new ProtocolError(ErrorCode.BadSyntax, 'a closing quote must end the argument');
      }
      tokens.push(out);
      continue;
    }
    const start = i;
    while (i < n && line[i] !== ' ' && line[i] !== '\t') {
      if (line[i] === '"' || line[i] === '\\') {
        throw new ProtocolError(ErrorCode.BadSyntax, 'quotes and backslashes belong inside a quoted argument');
      }
      i++;
    }
    tokens.push(line.slice(start, i));
  }
  return tokens;
}

/** Writes one argument so that `tokenize` reads it back unchanged. */
export function quoteArg(arg: string): string {
  if (CONTROL.test(arg)) {
    throw new ProtocolError(ErrorCode.BadSyntax, 'control characters cannot be sent in an argument');
  }
  if (SAFE_TOKEN.test(arg)) return arg;
  return `"${arg.replace(/[\\"]/g, (m) => `\\${m}`)}"`;
}

export function joinArgs(args: readonly string[]): string {
  return args.map(quoteArg).join(' ');
}
