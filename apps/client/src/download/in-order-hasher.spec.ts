import { createHash, randomBytes } from 'node:crypto';
import { InOrderHasher } from './in-order-hasher';

const sha1 = (data: Buffer) => createHash('sha1').update(data).digest('hex');

describe(InOrderHasher.name, () => {
  const chunks: Buffer[] = Array.from({ length: 6 }, (_, i) => randomBytes(i === 5 ? 123 : 1000));
  const whole = Buffer.concat(chunks);
  let released: Buffer[];
  const make = (maxHeld = 3) => new InOrderHasher(chunks.length, (data) => released.push(data), maxHeld);

  beforeEach(() => (released = []));

  it('hashes chunks that come out of order in file order, keeping the early ones until their turn', () => {
    const h = make();
    h.add(1, chunks[1]);
    h.add(3, chunks[3]);
    expect(h.heldCount).toBe(2);
    expect(released).toEqual([]);
    h.add(0, chunks[0]); // 0 and the kept 1 are hashed
    expect(released).toEqual([chunks[0], chunks[1]]);
    expect(h.heldCount).toBe(1);
    for (const i of [5, 2, 4]) h.add(i, chunks[i]);
    expect(h.isComplete).toBe(true);
    expect(h.digest()).toBe(sha1(whole));
    expect(h.hashedBytes).toBe(whole.length);
    expect(released).toHaveLength(chunks.length);
    expect(new Set(released).size).toBe(chunks.length);
  });

  it('gives up when one more chunk than it may keep comes early, letting every kept chunk go', () => {
    const h = make(2);
    h.add(0, chunks[0]);
    h.add(2, chunks[2]);
    h.add(3, chunks[3]);
    expect(h.gaveUp).toBe(false);
    h.add(4, chunks[4]);
    expect(h.gaveUp).toBe(true);
    expect(h.heldCount).toBe(0);
    expect(released.sort((a, b) => chunks.indexOf(a) - chunks.indexOf(b))).toEqual([0, 2, 3, 4].map((i) => chunks[i]));
    h.add(1, chunks[1]); // let go at once from now on
    expect(released).toContain(chunks[1]);
    expect(h.isComplete).toBe(false);
    expect(() => h.digest()).toThrow('not every chunk is hashed');
  });

  it('lets a chunk it has, or one out of range, go at once', () => {
    const h = make();
    h.add(0, chunks[0]);
    h.add(2, chunks[2]);
    const again = Buffer.from(chunks[2]);
    h.add(2, again);
    const first = Buffer.from(chunks[0]);
    h.add(0, first);
    const beyond = Buffer.alloc(5);
    h.add(6, beyond);
    expect(released).toEqual([chunks[0], again, first, beyond]);
    expect(h.heldCount).toBe(1);
  });

  it('clear lets every kept chunk go and ends hashing', () => {
    const h = make();
    h.add(1, chunks[1]);
    h.add(2, chunks[2]);
    h.clear();
    expect(released).toEqual([chunks[1], chunks[2]]);
    h.add(0, chunks[0]);
    expect(h.hashedBytes).toBe(0);
  });

  it('an empty file is complete from the start', () => {
    const h = new InOrderHasher(0, () => undefined);
    expect(h.isComplete).toBe(true);
    expect(h.digest()).toBe(sha1(Buffer.alloc(0)));
  });
});
