import { ProtocolError } from './errors';
import { formatChunkHeader, formatGetChunk, parseChunkHeader, parseGetChunk } from './peer';

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
});
