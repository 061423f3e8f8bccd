import { ErrorCode } from '@app/protocol';
import { DomainError } from '../common/domain.error';

export class GroupExistsError extends DomainError {
  constructor(groupId: string) {
    super(ErrorCode.GroupExists, `group ${groupId} already exists`);
  }
}
export class UnknownGroupError extends DomainError {
  constructor(groupId: string) {
    super(ErrorCode.UnknownGroup, `no group named ${groupId}`);
  }
}
export class NotMemberError extends DomainError {
  constructor(groupId: string) {
    super(ErrorCode.NotMember, `you are not a member of group ${groupId}`);
  }
}
export class AlreadyMemberError extends DomainError {
  constructor(groupId: string, userId?: string) {
    super(
      ErrorCode.AlreadyMember,
      userId ? `${userId} is already a member of group ${groupId}` : `you are already a member of group ${groupId}`,
    );
  }
}
export class RequestPendingError extends DomainError {
  constructor(groupId: string) {
    super(ErrorCode.RequestPending, `your request to join group ${groupId} is already pending`);
  }
}
export class NoSuchRequestError extends DomainError {
  constructor(groupId: string, userId: string) {
    super(ErrorCode.NoSuchRequest, `${userId} has no pending request to join group ${groupId}`);
  }
}
export class NotGroupOwnerError extends DomainError {
  constructor(groupId: string) {
    super(ErrorCode.NotOwner, `only the owner of group ${groupId} can do that`);
  }
}
