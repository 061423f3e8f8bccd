import { KnownNames } from './known-names.service';

export interface CompletableCommand {
  readonly name: string;
  /** Argument names in order, as in usage lines (`group_id`, `file_name`...). */
  readonly args: readonly string[];
}

/**
 * readline's completer: the first word completes to command names, a `group_id` argument to the groups seen, a
 * `file_name` argument to the files seen. Returns the candidates and the word they replace.
 */
export function complete(line: string, commands: readonly CompletableCommand[], names: KnownNames): [string[], string] {
  const words = line.split(/\s+/);
  if (words[0] === '') words.shift();
  const word = words[words.length - 1] ?? '';
  if (words.length <= 1) {
    const hits = commands
      .map((c) => c.name)
      .filter((n) => n.startsWith(word))
      .sort();
    return [hits.length === 1 ? [`${hits[0]} `] : hits, word];
  }
  const command = commands.find((c) => c.name === words[0]);
  const argName = command?.args[words.length - 2];
  const pool = argName === 'group_id' ? names.groups : argName === 'file_name' ? names.files : [];
  const hits = pool.filter((n) => n.startsWith(word)).sort();
  return [hits.length === 1 ? [`${hits[0]} `] : hits, word];
}
