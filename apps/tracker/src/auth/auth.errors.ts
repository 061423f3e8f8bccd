import { ErrorCode } from '@app/protocol';
import { DomainError } from '../common/domain.error';

export class UserExistsError extends DomainError {
  constructor(userId: string) {
    super(ErrorCode.UserExists, `user ${userId} already exists`);
  }
}
export class UnknownUserError extends DomainError {
  constructor(userId: string) {
    super(ErrorCode.UnknownUser, `no user named ${userId}`);
  }
}
export class WrongPasswordError extends DomainError {
  constructor(userId: string) {
    super(ErrorCode.WrongPassword, `wrong password for ${userId}`);
  }
}
export class InvalidPasswordError extends DomainError {
  constructor() {
    super(ErrorCode.InvalidPassword, 'a password must be 1-128 characters');
  }
}
export class AlreadyLoggedInError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.AlreadyLoggedIn, message);
  }
}
export class UnknownSessionError extends DomainError {
  constructor() {
    super(ErrorCode.UnknownSession, 'that session is unknown or over; log in again');
  }
}
export class SessionExpiredError extends DomainError {
  constructor() {
    super(ErrorCode.SessionExpired, 'that session has expired; log in again');
  }
}
