import { ErrorCode, errReply, okReply } from '@app/protocol';
import { expectOk, refusedWith, TrackerReplyError } from './tracker-reply.errors';

describe(TrackerReplyError.name, () => {
  it('carries the code and shows the message, or the code when the message is empty', () => {
    const err = new TrackerReplyError(errReply(ErrorCode.NotMember, 'you are not a member of g1'));
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('NOT_MEMBER');
    expect(err.message).toBe('you are not a member of g1');
    expect(new TrackerReplyError(errReply(ErrorCode.Busy, '')).message).toBe('BUSY');
  });

  it('tells one code from another', () => {
    const err = new TrackerReplyError(errReply(ErrorCode.NotSeeding, 'not seeding'));
    expect(err.is(ErrorCode.NotSeeding)).toBe(true);
    expect(err.is(ErrorCode.NotLoggedIn, ErrorCode.NotSeeding)).toBe(true);
    expect(err.is(ErrorCode.NotLoggedIn)).toBe(false);
  });
});

describe(refusedWith.name, () => {
  it('is true only for an ERR with one of the codes', () => {
    expect(refusedWith(errReply(ErrorCode.NotLoggedIn, 'log in first'), ErrorCode.NotLoggedIn)).toBe(true);
    expect(refusedWith(errReply(ErrorCode.NotLoggedIn, 'x'), ErrorCode.Busy, ErrorCode.NotLoggedIn)).toBe(true);
    expect(refusedWith(errReply(ErrorCode.Busy, 'later'), ErrorCode.NotLoggedIn)).toBe(false);
    expect(refusedWith(errReply('SOME_FUTURE_CODE', 'x'), ErrorCode.NotLoggedIn)).toBe(false);
    expect(refusedWith(okReply('NOT_LOGGED_IN'), ErrorCode.NotLoggedIn)).toBe(false);
  });
});

describe(expectOk.name, () => {
  it('gives an OK reply back and throws a TrackerReplyError for an ERR', () => {
    const ok = okReply('done', ['a']);
    expect(expectOk(ok)).toBe(ok);
    expect(() => expectOk(errReply(ErrorCode.UnknownFile, 'no such file'))).toThrow(
      expect.objectContaining({ name: 'TrackerReplyError', code: 'UNKNOWN_FILE', message: 'no such file' }) as Error,
    );
  });
});
