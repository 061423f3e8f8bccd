import { ProtocolError } from './errors';
import {
  formatBitfieldReply,
  formatBitfieldRequest,
  formatChunkHeader,
  formatGetChunk,
  formatHaveLines,
  isHaveLine,
  MAX_HAVE_PER_LINE,
  packBits,
  parseBitfieldReply,
  parseChunkHeader,
  parseGetChunk,
  parseHaveLine,
  parsePeerRequest,
} from './peer';

/** One byte per chunk, 1 where `held(i)`. */
const bits = (count: number, held: (i: number) => boolean) =>
  Uint8Array.from({ length: count }, (_, i) => (held(i) ? 1 : 0));

describe('peer protocol', () => {
  it.each([
    [{ index: 0, capability: 'AQAAAABp_x-9' }, 'GET_CHUNK 0 AQAAAABp_x-9'],
    [{ index: 17, capability: '/tmp/my file.bin' }, 'GET_CHUNK 17 "/tmp/my file.bin"'],
  ])('GET_CHUNK %j', (req, line) => {
    expect(formatGetChunk(req)).toBe(line);
    expect(parseGetChunk(line)).toEqual(req);
  });

  it.each(['GET_CHUNK', 'GET_CHUNK 1', 'GET_CHUNK -1 /x', 'GET_CHUNK a /x', 'GET_CHUNK 1 /x extra', 'PUT_CHUNK 1 /x'])(
    'refuses %j',
    (line) => expect(() => parseGetChunk(line)).toThrow(ProtocolError),
  );

  it('reads chunk headers', () => {
    expect(parseChunkHeader(formatChunkHeader(3, 524288))).toEqual({ index: 3, length: 524288 });
    expect(() => parseChunkHeader('CHUNK 3')).toThrow(ProtocolError);
  });

  describe('requests of the extended form', () => {
    it('reads BITFIELD and GET_CHUNK', () => {
      expect(parsePeerRequest(formatBitfieldRequest('AQAAAABp_x-9'))).toEqual({
        kind: 'bitfield',
        capability: 'AQAAAABp_x-9',
      });
      expect(parsePeerRequest('GET_CHUNK 4 AQAAAABp_x-9')).toEqual({
        kind: 'get_chunk',
        index: 4,
        capability: 'AQAAAABp_x-9',
      });
    });

    it.each([
      ['BITFIELD', 'BAD_ARGUMENTS'],
      ['BITFIELD a b', 'BAD_ARGUMENTS'],
      ['BITFIELDS a', 'UNKNOWN_COMMAND'],
      ['bitfield a', 'UNKNOWN_COMMAND'],
      ['HAVE 1', 'UNKNOWN_COMMAND'],
      ['GET_CHUNK x a', 'BAD_ARGUMENTS'],
    ])('refuses %j with %s', (line, code) => {
      let thrown: unknown;
      try {
        parsePeerRequest(line);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ProtocolError);
      expect((thrown as ProtocolError).code).toBe(code);
    });
  });

  describe('BITFIELD replies', () => {
    it.each([1, 7, 8, 9, 16, 17, 1000, 4097])('round-trips %i chunks, held or not in any pattern', (count) => {
      for (const held of [
        bits(count, () => true),
        bits(count, () => false),
        bits(count, (i) => i % 3 === 0),
        bits(count, (i) => i === count - 1),
      ]) {
        expect(parseBitfieldReply(formatBitfieldReply(held), count)).toEqual(held);
      }
    });

    it('packs MSB first, as BitTorrent does, in URL-safe base64 without padding', () => {
      // chunks 0, 8 and 9 of 10: 0x80 0xc0
      expect(formatBitfieldReply(bits(10, (i) => [0, 8, 9].includes(i)))).toBe('BITFIELD 10 gMA');
      expect([...packBits(bits(10, (i) => [0, 8, 9].includes(i)))]).toEqual([0x80, 0xc0]);
      // 0xfb 0xff: '+' and '/' of plain base64 become '-' and '_'
      expect(formatBitfieldReply(bits(16, (i) => i !== 5))).toBe('BITFIELD 16 -_8');
    });

    it('writes and reads a file of no chunks as `-`', () => {
      expect(formatBitfieldReply(new Uint8Array(0))).toBe('BITFIELD 0 -');
      expect(parseBitfieldReply('BITFIELD 0 -', 0)).toEqual(new Uint8Array(0));
      expect(parseBitfieldReply('BITFIELD 0 AA', 0)).toBeUndefined();
    });

    it('treats any non-zero byte as held when packing', () => {
      expect(formatBitfieldReply(Uint8Array.from([255, 0, 2]))).toBe('BITFIELD 3 oA');
    });

    it.each([
      ['spare bits set', 'BITFIELD 10 gME', 10],
      ['the last spare bit set', 'BITFIELD 1 gQ', 1],
      ['one byte too few', 'BITFIELD 10 gA', 10],
      ['one byte too many', 'BITFIELD 10 gMAA', 10],
      ['another chunk count than the file', 'BITFIELD 9 gMA', 10],
      ['padding', 'BITFIELD 10 gMA=', 10],
      ['plain base64 letters', 'BITFIELD 16 +/8', 16],
      ['non-canonical base64 (unused low bits set)', 'BITFIELD 10 gMB', 10],
      ['a missing count', 'BITFIELD gMA', 10],
      ['a negative count', 'BITFIELD -10 gMA', 10],
      ['a trailing word', 'BITFIELD 10 gMA x', 10],
      ['`-` for a file with chunks', 'BITFIELD 10 -', 10],
      ['an error line', 'ERR UNKNOWN_COMMAND unknown peer command', 10],
      ['a chunk header', 'CHUNK 1 524288', 10],
    ])('refuses a reply with %s', (_, line, count) => {
      expect(parseBitfieldReply(line, count)).toBeUndefined();
    });
  });

  describe('HAVE lines', () => {
    it('round-trips indexes, MAX_HAVE_PER_LINE a line', () => {
      const indexes = Array.from({ length: 2 * MAX_HAVE_PER_LINE + 1 }, (_, i) => i * 2);
      const lines = formatHaveLines(indexes);
      expect(lines).toHaveLength(3);
      expect(lines[2]).toBe(`HAVE ${4 * MAX_HAVE_PER_LINE}`);
      expect(lines.every(isHaveLine)).toBe(true);
      expect(lines.flatMap((l) => parseHaveLine(l, 4 * MAX_HAVE_PER_LINE + 1)!)).toEqual(indexes);
    });

    it('reads a line of exactly 1000 indexes and refuses one of 1001', () => {
      const thousand = Array.from({ length: 1000 }, (_, i) => i);
      const [line] = formatHaveLines(thousand);
      expect(parseHaveLine(line, 1000)).toEqual(thousand);
      expect(parseHaveLine(`${line},1000`, 1001)).toBeUndefined();
    });

    it('writes no line for no index', () => {
      expect(formatHaveLines([])).toEqual([]);
    });

    it.each([
      ['an index past the file', 'HAVE 3', 3],
      ['a negative index', 'HAVE -1', 3],
      ['an empty list', 'HAVE ', 3],
      ['a trailing comma', 'HAVE 1,', 3],
      ['spaces in the list', 'HAVE 1, 2', 3],
      ['a 10-digit index', 'HAVE 1234567890', 2e9],
      ['another word', 'HAVEN 1', 3],
    ])('refuses %s', (_, line, count) => {
      expect(parseHaveLine(line, count)).toBeUndefined();
    });

    it('tells HAVE lines from replies', () => {
      expect(isHaveLine('HAVE 0,1')).toBe(true);
      for (const line of ['CHUNK 0 1', 'ERR NOT_HELD x', 'BITFIELD 1 gA', 'HAVEN 1'])
        expect(isHaveLine(line)).toBe(false);
    });
  });
});
