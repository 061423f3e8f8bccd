import { InvalidIdError } from './domain.error';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

/** User and group ids: 1-32 characters, letters, digits, '.', '_' or '-', starting with a letter or digit. */
export function assertValidId(kind: 'user' | 'group', id: string): void {
  if (!ID.test(id)) throw new InvalidIdError(kind, id);
}
