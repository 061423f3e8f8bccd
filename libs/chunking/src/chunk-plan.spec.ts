import { chunkRange, CHUNK_SIZE, planChunks } from './chunk-plan';

describe('planChunks', () => {
  it.each([
    [0, 0, 0],
    [1, 1, 1],
    [CHUNK_SIZE, 1, CHUNK_SIZE],
    [CHUNK_SIZE + 1, 2, 1],
    [100 * 1024 ** 3, 204800, CHUNK_SIZE],
  ])('%d bytes -> %d chunks, last %d bytes', (size, count, last) => {
    expect(planChunks(size)).toMatchObject({ count, lastChunkSize: last });
  });

  it('gives offsets and lengths, refusing indexes outside the file', () => {
    const plan = planChunks(2 * CHUNK_SIZE + 5);
    expect(chunkRange(plan, 2)).toEqual({ offset: 2 * CHUNK_SIZE, length: 5 });
    expect(() => chunkRange(plan, 3)).toThrow(RangeError);
    expect(() => chunkRange(plan, -1)).toThrow(RangeError);
  });
});
