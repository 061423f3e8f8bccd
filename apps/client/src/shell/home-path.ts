import { homedir } from 'node:os';
import { join } from 'node:path';

/** `~` and `~/...` as a shell expands them (the user's home folder); `~user` and anything else is left as typed. */
export function expandHome(path: string, home: string = homedir()): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}
