import { ID_PATTERN } from '@app/protocol';
import { InvalidIdError } from './domain.error';

/** User and group ids: 1-32 characters, letters, digits, '.', '_' or '-', starting with a letter or digit. */
export function assertValidId(kind: 'user' | 'group', id: string): void {
  if (!ID_PATTERN.test(id)) throw new InvalidIdError(kind, id);
}
