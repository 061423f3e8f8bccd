import { ErrorCode } from '@app/protocol';

/** A refusal the user caused and can fix; the transport turns it into `ERR <code> <message>`. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotLoggedInError extends DomainError {
  constructor() {
    super(ErrorCode.NotLoggedIn, 'you must log in first');
  }
}

export class InvalidIdError extends DomainError {
  constructor(kind: string, id: string) {
    super(
      ErrorCode.InvalidId,
      `invalid ${kind} id '${id.slice(0, 40)}': use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}
