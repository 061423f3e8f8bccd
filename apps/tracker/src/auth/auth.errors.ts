import { ErrorCode, TLS_REQUIRED_MESSAGE } from '@app/protocol';
import { DomainError } from '../common/domain.error';

export class UserExistsError extends DomainError {
  constructor(userId: string) {
    super(ErrorCode.UserExists, `user ${userId} already exists`);
  }
}
/** Unknown user or wrong password: one answer, so that nobody learns who has an account. */
export class LoginFailedError extends DomainError {
  constructor() {
    super(ErrorCode.LoginFailed, 'wrong user id or password');
  }
}
/** Refused without trying: a backoff is in force or the tracker is saturated; `seconds` says when to retry. */
export class TryLaterError extends DomainError {
  constructor(reason: string, seconds: number) {
    super(ErrorCode.TryLater, `${reason}; try again in ${Math.max(1, Math.ceil(seconds))} s`);
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
/** `login`, `resume` or `create_user` on a connection that did not begin with STARTTLS, under `--require-tls`. */
export class TlsRequiredError extends DomainError {
  constructor() {
    super(ErrorCode.TlsRequired, TLS_REQUIRED_MESSAGE);
  }
}
