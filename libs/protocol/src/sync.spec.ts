import fc from 'fast-check';
import { ProtocolError } from './errors';
import { formatSnapshotHead, formatSnapshotRow, parseSnapshotHead, parseSnapshotRow } from './sync';

describe('snapshot lines', () => {
  it('writes and reads back the head of a sync_snapshot reply', () => {
    const head = {
      versionVector: new Map([
        [1, 120],
        [3, 7],
      ]),
      lamport: 130,
      origin: 1,
      seq: 120,
      rows: 42,
    };
    expect(formatSnapshotHead(head)).toBe('1:120,3:7 130/1/120 42');
    expect(parseSnapshotHead('1:120,3:7 130/1/120 42')).toEqual(head);
    expect(parseSnapshotHead('- 0/0/0 0')).toEqual({
      versionVector: new Map(),
      lamport: 0,
      origin: 0,
      seq: 0,
      rows: 0,
    });
  });

  it.each(['', '1:120 130/1/120', '1:120 130/1 42', 'x 130/1/120 42', '1:120 130/1/120 42 more', '1:1 1/1/1 -4'])(
    'refuses the head %p',
    (line) => expect(() => parseSnapshotHead(line)).toThrow(ProtocolError),
  );

  it('reads back any row it writes: fields with spaces, quotes, backslashes or nothing at all', () => {
    const field = fc.string({ unit: fc.constantFrom('a', ' ', '"', '\\', 'é', ',', '/') });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e9 }), fc.array(field, { maxLength: 6 }), (n, row) => {
        expect(parseSnapshotRow(formatSnapshotRow(n, 'groups', row))).toEqual({ n, part: 'groups', row });
      }),
    );
  });

  it.each(['', '0 groups x', 'one groups x', '-1 groups x', '7', '7 ""', '7 "unterminated', '7 a\u0001b'])(
    'refuses the row %p',
    (line) => expect(() => parseSnapshotRow(line)).toThrow(ProtocolError),
  );
});
