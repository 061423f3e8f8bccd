import fc from 'fast-check';
import { ErrorCode, ProtocolError } from './errors';
import { decodeOpBody, encodeOpArgs, ID_PATTERN, isOpKind, OP_KINDS, OpBody, OpKind } from './ops';
import { decodeOp, encodeOp, StampedOp } from './sync';
import { tokenize } from './tokenize';

const H = (c: string) => c.repeat(40);
const TOKEN = 'ab'.repeat(32);

/** One valid change of every kind, with the positional args it is stored and sent as. */
const EXAMPLES: readonly [OpBody, string[]][] = [
  [
    { kind: 'create_user', userId: 'alice', passwordHash: 'scrypt$1024$8$1$c2FsdA==$a2V5' },
    ['alice', 'scrypt$1024$8$1$c2FsdA==$a2V5'],
  ],
  [{ kind: 'session_open', tokenHash: TOKEN }, [TOKEN]],
  [{ kind: 'session_close', tokenHash: TOKEN }, [TOKEN]],
  [{ kind: 'session_resume', tokenHash: TOKEN }, [TOKEN]],
  [{ kind: 'session_seen', tokenHash: TOKEN }, [TOKEN]],
  [{ kind: 'create_group', groupId: 'team-1' }, ['team-1']],
  [{ kind: 'join_group', groupId: 'team-1' }, ['team-1']],
  [{ kind: 'leave_group', groupId: 'team-1' }, ['team-1']],
  [{ kind: 'accept_request', groupId: 'team-1', candidate: 'bob' }, ['team-1', 'bob']],
  [
    {
      kind: 'upload_file',
      groupId: 'team-1',
      filePath: '/home/a b/"q" ünï.bin',
      fileSize: 524_289,
      fileHash: H('a'),
      chunkHashList: `${H('b')},${H('C')}`,
    },
    ['team-1', '/home/a b/"q" ünï.bin', '524289', H('a'), `${H('b')},${H('C')}`],
  ],
  [
    { kind: 'upload_file', groupId: 'g', filePath: '/e', fileSize: 0, fileHash: H('0'), chunkHashList: '' },
    ['g', '/e', '0', H('0'), ''],
  ],
  [
    { kind: 'new_seeder', groupId: 'team-1', fileName: 'a b.bin', filePath: '/c/a b.bin' },
    ['team-1', 'a b.bin', '/c/a b.bin'],
  ],
  [{ kind: 'stop_share', groupId: 'team-1', fileName: 'a b.bin' }, ['team-1', 'a b.bin']],
];

const refusal = (work: () => unknown): ProtocolError => {
  try {
    work();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe(ErrorCode.BadArguments);
    return err as ProtocolError;
  }
  throw new Error('expected a refusal');
};

describe('op codecs', () => {
  it('has an example for every kind', () => {
    expect(new Set(EXAMPLES.map(([op]) => op.kind))).toEqual(new Set(OP_KINDS));
  });

  it.each(EXAMPLES)('encodes %j to its positional args and decodes them back', (op, args) => {
    expect(encodeOpArgs(op)).toEqual(args);
    expect(decodeOpBody(op.kind, args)).toEqual(op);
  });

  it.each(EXAMPLES)('refuses %j with an arg too many or too few', (op, args) => {
    expect(refusal(() => decodeOpBody(op.kind, [...args, 'x'])).message).toMatch(
      new RegExp(`^bad ${op.kind} change: takes ${args.length} args? \\(.*\\), not ${args.length + 1}$`),
    );
    expect(refusal(() => decodeOpBody(op.kind, args.slice(1))).message).toContain(`not ${args.length - 1}`);
  });

  it('refuses a kind that is not one, naming it', () => {
    expect(refusal(() => decodeOpBody('drop_table', ['g1'])).message).toBe("unknown change kind 'drop_table'");
    expect(isOpKind('toString')).toBe(false);
    expect(isOpKind('create_group')).toBe(true);
  });

  /** [kind, args, what the refusal names]: each arg of each kind, malformed. */
  const BAD: readonly [OpKind, string[], RegExp][] = [
    ['create_user', ['al ice', 'h'], /user_id 'al ice' is not an id/],
    ['create_user', ['', 'h'], /user_id '' is not an id/],
    ['create_user', ['alice', ''], /password_hash must be 1-4096 characters/],
    ['create_user', ['alice', 'a\nb'], /password_hash/],
    ['session_open', ['AB'.repeat(32)], /token_hash is not 64 lowercase hex digits/],
    ['session_close', ['ab'.repeat(31)], /token_hash/],
    ['session_resume', [`${'ab'.repeat(31)}zz`], /token_hash/],
    ['session_seen', [''], /token_hash/],
    ['create_group', ['-g'], /group_id '-g' is not an id/],
    ['join_group', ['g'.repeat(33)], /group_id/],
    ['leave_group', ['g/1'], /group_id/],
    ['accept_request', ['g1', 'b ob'], /user_id 'b ob'/],
    ['upload_file', ['g 1', '/f', '1', H('a'), H('b')], /group_id/],
    ['upload_file', ['g1', '', '1', H('a'), H('b')], /file_path must be/],
    ['upload_file', ['g1', '/f\u0000', '1', H('a'), H('b')], /file_path/],
    ['upload_file', ['g1', '/f', '01', H('a'), H('b')], /file_size '01'/],
    ['upload_file', ['g1', '/f', '1e3', H('a'), H('b')], /file_size '1e3'/],
    ['upload_file', ['g1', '/f', '-1', H('a'), H('b')], /file_size/],
    ['upload_file', ['g1', '/f', '99999999999999999', H('a'), H('b')], /file_size/],
    ['upload_file', ['g1', '/f', '1', 'a'.repeat(39), H('b')], /file_hash is not a 40-digit hex SHA-1/],
    ['upload_file', ['g1', '/f', '1', H('g'), H('b')], /file_hash/],
    ['upload_file', ['g1', '/f', '1', H('a'), H('b').slice(1)], /chunk_hashes is not a list of SHA-1s/],
    ['upload_file', ['g1', '/f', '1', H('a'), `${H('b')};${H('c')}`], /chunk_hashes .*at character 40/],
    ['upload_file', ['g1', '/f', '1', H('a'), `${H('b')},`], /chunk_hashes/],
    ['upload_file', ['g1', '/f', '1', H('a'), `${H('b')},${'c'.repeat(39)}x`], /at character 80/],
    ['upload_file', ['g1', '/f', '1', H('a'), `${'b'.repeat(39)}\u0100`], /at character 39/],
    ['new_seeder', ['g1', '', '/f'], /file_name must be/],
    ['new_seeder', ['g1', 'f', 'x'.repeat(4097)], /file_path must be/],
    ['stop_share', ['g1', 'a\tb'], /file_name/],
  ];

  it.each(BAD)('refuses %s %j', (kind, args, why) => {
    expect(refusal(() => decodeOpBody(kind, args)).message).toMatch(why);
  });

  it('keeps the group and user ids the tracker accepts, and only those', () => {
    expect(ID_PATTERN.test('a'.repeat(32))).toBe(true);
    expect(ID_PATTERN.test('A.b_c-9')).toBe(true);
    expect(ID_PATTERN.test('a'.repeat(33))).toBe(false);
    expect(ID_PATTERN.test('.a')).toBe(false);
  });

  it('checks a list of 204,800 chunk hashes in one pass over the text it was given', () => {
    const list = Array.from({ length: 204_800 }, (_, i) => i.toString(16).padStart(40, '0')).join(',');
    const op = decodeOpBody('upload_file', ['g1', '/big', String(204_800 * 524_288), H('a'), list]);
    expect(op).toMatchObject({ kind: 'upload_file', fileSize: 107_374_182_400 });
    expect(op.kind === 'upload_file' && op.chunkHashList.length).toBe(list.length);
    expect(encodeOpArgs(op)[4]).toBe(list);
  });

  describe('property', () => {
    const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/);
    const free = fc.string({ minLength: 1, maxLength: 60, unit: 'binary' }).filter((s) => !/[\x00-\x1f\x7f]/.test(s));
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
    const tokenHash = fc.stringMatching(/^[0-9a-f]{64}$/);
    const body: fc.Arbitrary<OpBody> = fc.oneof(
      fc.record({ kind: fc.constant('create_user' as const), userId: id, passwordHash: free }),
      fc.record({
        kind: fc.constantFrom(
          'session_open' as const,
          'session_close' as const,
          'session_resume' as const,
          'session_seen' as const,
        ),
        tokenHash,
      }),
      fc.record({
        kind: fc.constantFrom('create_group' as const, 'join_group' as const, 'leave_group' as const),
        groupId: id,
      }),
      fc.record({ kind: fc.constant('accept_request' as const), groupId: id, candidate: id }),
      fc.record({
        kind: fc.constant('upload_file' as const),
        groupId: id,
        filePath: free,
        fileSize: fc.maxSafeNat(),
        fileHash: hex(40),
        chunkHashList: fc.array(hex(40), { maxLength: 5 }).map((l) => l.join(',')),
      }),
      fc.record({ kind: fc.constant('new_seeder' as const), groupId: id, fileName: free, filePath: free }),
      fc.record({ kind: fc.constant('stop_share' as const), groupId: id, fileName: free }),
    );
    const stamped: fc.Arbitrary<StampedOp> = fc
      .record({
        body,
        actor: fc.oneof(fc.constant(''), id),
        time: fc.nat({ max: 10 ** 15 - 1 }),
        // '-' is how the stamp writes an empty request id, so a request id of '-' itself comes back empty
        requestId: fc.oneof(
          fc.constant(''),
          fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/).filter((r) => r !== '-'),
        ),
        origin: fc.integer({ min: 1, max: 9999 }),
        seq: fc.integer({ min: 1, max: 10 ** 15 - 1 }),
        lamport: fc.integer({ min: 1, max: 10 ** 15 - 1 }),
      })
      .map(({ body: b, ...rest }) => ({ ...b, ...rest }));

    it('decodes what it encodes, as args and as a sync line, and encodes it to the same text again', () => {
      fc.assert(
        fc.property(stamped, (op) => {
          expect(decodeOpBody(op.kind, encodeOpArgs(op))).toEqual(
            Object.fromEntries(
              Object.entries(op).filter(([k]) => !/^(actor|time|requestId|origin|seq|lamport)$/.test(k)),
            ),
          );
          const line = encodeOp(op);
          expect(decodeOp(line)).toEqual(op);
          expect(encodeOp(decodeOp(line))).toBe(line);
        }),
        { numRuns: 500 },
      );
    });
  });
});

describe('sync lines of changes', () => {
  it('reads the documented example and writes it back byte for byte', () => {
    const line = 'create_group team alice 1/17/42/1764140000000/c1-9';
    const op = decodeOp(line);
    expect(op).toEqual({
      kind: 'create_group',
      groupId: 'team',
      actor: 'alice',
      origin: 1,
      seq: 17,
      lamport: 42,
      time: 1_764_140_000_000,
      requestId: 'c1-9',
    });
    expect(encodeOp(op)).toBe(line);
  });

  it('writes an upload_file line as it was written before the kinds were typed', () => {
    const line = `upload_file g1 "/a b/f.bin" 1 ${H('a')} ${H('b')} bob 2/3/4/5/-`;
    const op = decodeOp(line);
    expect(op).toMatchObject({ kind: 'upload_file', filePath: '/a b/f.bin', fileSize: 1, chunkHashList: H('b') });
    expect(tokenize(encodeOp(op))).toEqual([
      'upload_file',
      'g1',
      '/a b/f.bin',
      '1',
      H('a'),
      H('b'),
      'bob',
      '2/3/4/5/-',
    ]);
    expect(encodeOp(op)).toBe(line);
  });

  it('refuses a line whose args do not fit its kind', () => {
    expect(refusal(() => decodeOp('create_group a b alice 1/1/1/1/-')).message).toMatch(/create_group.*takes 1 arg/);
    expect(refusal(() => decodeOp('made_up g1 alice 1/1/1/1/-')).message).toMatch(/unknown change kind 'made_up'/);
  });
});
