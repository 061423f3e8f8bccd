import { Injectable } from '@nestjs/common';

/** At most this many names of each kind are kept (the oldest go first). */
const LIMIT = 500;

/**
 * Group and file names this client has seen (in `list_groups`/`list_files` answers, its own uploads and downloads),
 * for Tab completion. In memory only.
 */
@Injectable()
export class KnownNames {
  private readonly groupSet = new Set<string>();
  private readonly fileSet = new Set<string>();

  addGroup(name: string): void {
    remember(this.groupSet, name);
  }

  addFile(name: string): void {
    remember(this.fileSet, name);
  }

  get groups(): readonly string[] {
    return [...this.groupSet];
  }

  get files(): readonly string[] {
    return [...this.fileSet];
  }
}

function remember(set: Set<string>, name: string): void {
  if (name === '' || /[\s"]/.test(name)) return; // completion inserts plain tokens only
  set.delete(name);
  set.add(name);
  if (set.size > LIMIT) set.delete(set.values().next().value as string);
}
