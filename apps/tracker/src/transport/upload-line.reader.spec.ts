import { CHUNK_SIZE } from '@app/chunking';
import { ErrorCode, FrameDecoder, ProtocolError } from '@app/protocol';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { UploadLineLimits, UploadLineOutcome, UploadLineReader } from './upload-line.reader';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const hashes = (n: number, seed = 'c') => Array.from({ length: n }, (_, i) => sha1(`${seed}${i}`));

const HEAD_LIMIT = 1024;

/** Limits with a budget that records what was taken. */
function limits(over: Partial<UploadLineLimits> = {}): UploadLineLimits & { reserved: number[] } {
  const reserved: number[] = [];
  return {
    maxHeadBytes: HEAD_LIMIT,
    maxLineBytes: 1024 * 1024,
    requestIds: false,
    reserve: (bytes) => {
      reserved.push(bytes);
      return undefined;
    },
    reserved,
    ...over,
  };
}

const line = (list: string, size: number, port = '7001', path = '"/home/a/big file.bin"') =>
  Buffer.from(`upload_file g1 ${path} ${size} ${sha1('file')} ${list} ${port}\n`);

/** Feeds `bytes` to a reader in pieces of the given sizes (cycled); returns the reader and the bytes it took. */
function feed(bytes: Buffer, pieces: number[], over: Partial<UploadLineLimits> = {}) {
  const reader = UploadLineReader.start(bytes.subarray(0, HEAD_LIMIT + 1), limits(over));
  expect(reader).toBeDefined();
  let at = 0;
  let early = false;
  for (let p = 0; at < bytes.length && !reader!.finished; p++) {
    const piece = bytes.subarray(at, at + pieces[p % pieces.length]);
    const took = reader!.write(piece);
    at += took;
    if (took < piece.length && !reader!.finished) early = true;
  }
  expect(early).toBe(false); // it takes every byte it is given until it is finished
  return { reader: reader!, took: at };
}

const digestsOf = (list: readonly string[]) => Buffer.from(list.join(''), 'hex');

function refusedWith(outcome: UploadLineOutcome): ProtocolError {
  expect(outcome.ok).toBe(false);
  return (outcome as { error: ProtocolError }).error;
}

describe(UploadLineReader.name, () => {
  const list = hashes(200);
  const size = 200 * CHUNK_SIZE - 5;
  const bytes = line(list.join(','), size);

  it.each([[[1]], [[7, 1, 13]], [[41]], [[4096]], [[bytes.length]]])(
    'reads the head, then every hash into its digest, then my_port, fed in pieces of %j',
    (pieces) => {
      const { reader, took } = feed(bytes, pieces);
      expect(reader.finished).toBe(true);
      expect(reader.sawNewline).toBe(true);
      expect(took).toBe(bytes.length);
      expect(reader.outcome()).toEqual({
        ok: true,
        requestId: '',
        command: {
          kind: 'upload_file',
          groupId: 'g1',
          filePath: '/home/a/big file.bin',
          fileSize: String(size),
          fileHash: sha1('file'),
          chunkHashes: '',
          chunkDigests: digestsOf(list),
          myPort: '7001',
        },
      });
    },
  );

  it('reads any split of the line the same, uppercase hex too', () => {
    const upper = line(list.join(',').toUpperCase(), size, '10.0.0.1:7001');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }), (pieces) => {
        const { reader, took } = feed(upper, pieces);
        expect(took).toBe(upper.length);
        const outcome = reader.outcome();
        expect(outcome.ok && outcome.command.chunkDigests).toEqual(digestsOf(list));
        expect(outcome.ok && outcome.command.myPort).toBe('10.0.0.1:7001');
      }),
      { numRuns: 30 },
    );
  });

  it('takes the digests (20 bytes a chunk) out of the budget before reading them', () => {
    const budget = limits();
    UploadLineReader.start(bytes, budget)!.write(bytes);
    expect(budget.reserved).toEqual([200 * 20]);
    const refused = UploadLineReader.start(bytes, {
      ...budget,
      reserve: () => new ProtocolError(ErrorCode.TryLater, 'busy'),
    })!;
    expect(refused.write(bytes)).toBe(0);
    expect(refusedWith(refused.outcome()).code).toBe(ErrorCode.TryLater);
  });

  it('takes a request id only where request ids are allowed', () => {
    const withId = Buffer.concat([Buffer.from('#up-1 '), bytes]);
    expect(UploadLineReader.start(withId, limits())).toBeUndefined();
    const reader = UploadLineReader.start(withId, limits({ requestIds: true }))!;
    expect(reader.write(withId)).toBe(withId.length);
    expect(reader.outcome()).toMatchObject({ ok: true, requestId: 'up-1' });
  });

  it('leaves every other long line alone', () => {
    expect(UploadLineReader.start(Buffer.from(`list_files ${'x'.repeat(2000)}`), limits())).toBeUndefined();
    expect(UploadLineReader.start(Buffer.from(`upload_filex ${'x'.repeat(2000)}`), limits())).toBeUndefined();
  });

  describe('gives up at once, leaving the rest of the line untaken', () => {
    function refusedAt(text: Buffer, pieces = [1]): { error: ProtocolError; took: number } {
      const { reader, took } = feed(text, pieces);
      expect(reader.finished).toBe(true);
      return { error: refusedWith(reader.outcome()), took };
    }
    const at = (i: number) => bytes.indexOf(list[i]);

    it('on a byte that is not hex', () => {
      const bad = Buffer.from(bytes);
      bad[at(150) + 17] = 'g'.charCodeAt(0);
      for (const pieces of [[1], [333], [bad.length]]) {
        const { error, took } = refusedAt(bad, pieces);
        expect(error.code).toBe(ErrorCode.BadFileMetadata);
        expect(error.message).toBe('chunk hash 150 is not a 40-digit hex SHA-1');
        expect(took).toBe(at(150) + 17);
      }
    });

    it('on a short hash', () => {
      const short = list.slice();
      short[7] = short[7].slice(0, 39);
      const { error, took } = refusedAt(line(short.join(','), size));
      expect(error.message).toBe('chunk hash 7 is not a 40-digit hex SHA-1');
      expect(took).toBeLessThan(at(9));
    });

    it('on a list longer than the file has chunks', () => {
      const { error, took } = refusedAt(line(list.join(','), 100 * CHUNK_SIZE));
      expect(error).toMatchObject({ code: ErrorCode.BadFileMetadata });
      expect(error.message).toMatch(/^more chunk hashes than the 100 chunks/);
      expect(took).toBeLessThan(at(101));
    });

    it('on a list shorter than the file has chunks', () => {
      const { error } = refusedAt(line(list.join(','), 300 * CHUNK_SIZE));
      expect(error.message).toMatch(/has 300 chunks of 512 KiB, but 200 chunk hashes were given/);
    });

    it('on a file too big for the line limit, before any hash', () => {
      const { reader, took } = feed(bytes, [bytes.length], { maxLineBytes: 5_000 });
      expect(took).toBe(0);
      expect(refusedWith(reader.outcome()).code).toBe(ErrorCode.RequestTooLarge);
    });

    it('on a bad file_size, a missing my_port, or one argument too many', () => {
      expect(refusedAt(line(list.join(','), 'x' as unknown as number)).error.code).toBe(ErrorCode.BadFileMetadata);
      const noPort = Buffer.from(`upload_file g1 /f ${size} ${sha1('f')} ${list.join(',')}\n`);
      const missing = refusedAt(noPort);
      expect(missing.error).toMatchObject({ code: ErrorCode.BadArguments });
      expect(missing.took).toBe(noPort.length); // the newline was the problem, and is taken
      expect(refusedAt(line(list.join(','), size, '7001 extra')).error.code).toBe(ErrorCode.BadArguments);
    });
  });
});

describe('FrameDecoder diverting a long line to a sink', () => {
  const list = hashes(300);
  const long = line(list.join(','), 300 * CHUNK_SIZE);

  function decode(stream: Buffer, pieces: number) {
    const decoder = new FrameDecoder(HEAD_LIMIT);
    decoder.divert = (start) => UploadLineReader.start(start, limits());
    const frames: string[] = [];
    let most = 0;
    for (let at = 0; at < stream.length; at += pieces) {
      decoder.push(stream.subarray(at, at + pieces));
      for (let f = decoder.nextFrame(); f; f = decoder.nextFrame()) {
        if (f.type === 'streamed') {
          const outcome = (f.sink as UploadLineReader).outcome();
          frames.push(
            outcome.ok ? `upload ${outcome.command.chunkDigests!.length / 20}` : `refused ${outcome.error.code}`,
          );
        } else frames.push(f.type === 'line' ? f.line : f.type);
      }
      // memory: never more than a line's worth (and a piece) buffered, however long the upload line
      most = Math.max(most, decoder.bufferedBytes);
    }
    expect(most).toBeLessThanOrEqual(HEAD_LIMIT + 1 + pieces);
    return frames;
  }

  it.each([1, 97, 4096, 1 << 20])('yields the lines around it and the upload, fed %i bytes at a time', (pieces) => {
    const bad = Buffer.from(long);
    bad[bad.indexOf(list[200]) + 3] = 0x7a; // 'z'
    const stream = Buffer.concat([
      Buffer.from('login a b\n'),
      long,
      Buffer.from('list_files g1\n'),
      bad,
      Buffer.from('x\n'),
    ]);
    expect(decode(stream, pieces)).toEqual([
      'login a b',
      'upload 300',
      'list_files g1',
      `refused ${ErrorCode.BadFileMetadata}`,
      'x',
    ]);
  });

  it('lets a long line that no sink takes overflow as before', () => {
    const stream = Buffer.from(`list_files ${'x'.repeat(5000)}\nnext\n`);
    expect(decode(stream, 100)).toEqual(['overflow', 'next']);
  });
});
