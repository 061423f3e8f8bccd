import { tokenize } from '@app/protocol';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Commands whose second argument is a password. */
const PASSWORD_COMMANDS = new Set(['login', 'create_user']);

/** How many lines the history file keeps. */
export const HISTORY_LIMIT = 1000;

/**
 * A line as history keeps it: `login alice s3cret` becomes `login alice` (the password is asked for again, without
 * echo); a line that does not tokenise but starts like one of those commands is not kept at all; blank lines neither.
 */
export function forHistory(line: string): string | undefined {
  const trimmed = line.trim();
  if (trimmed === '') return undefined;
  const first = trimmed.split(/\s+/)[0];
  if (!PASSWORD_COMMANDS.has(first)) return trimmed;
  let tokens: string[];
  try {
    tokens = tokenize(trimmed);
  } catch {
    return undefined;
  }
  if (tokens.length < 2 || !/^[\w.@-]+$/.test(tokens[1])) return tokens.length === 1 ? first : undefined;
  return `${first} ${tokens[1]}`;
}

/** The shell's history in `<data dir>/history`: mode 0600, at most HISTORY_LIMIT lines, oldest first on disk. */
export class HistoryFile {
  private lines: string[] = [];

  constructor(
    private readonly path: string,
    private readonly limit = HISTORY_LIMIT,
  ) {}

  /** Loads the file (missing: empty); newest first, as readline's `history` option wants it. */
  load(): string[] {
    try {
      if (existsSync(this.path)) {
        this.lines = readFileSync(this.path, 'utf8')
          .split('\n')
          .map((l) => forHistory(l))
          .filter((l): l is string => l !== undefined)
          .slice(-this.limit);
      }
    } catch {
      this.lines = [];
    }
    return [...this.lines].reverse();
  }

  /** Adds a typed line (filtered by `forHistory`); returns what was kept. A file that cannot be written is skipped. */
  add(line: string): string | undefined {
    const kept = forHistory(line);
    if (kept === undefined) return undefined;
    if (this.lines[this.lines.length - 1] !== kept) {
      this.lines.push(kept);
      if (this.lines.length > this.limit) this.lines.splice(0, this.lines.length - this.limit);
      try {
        mkdirSync(dirname(this.path), { recursive: true });
        writeFileSync(this.path, `${this.lines.join('\n')}\n`, { mode: 0o600 });
        chmodSync(this.path, 0o600);
      } catch {
        // history is a comfort; a read-only data dir must not stop the shell
      }
    }
    return kept;
  }
}
