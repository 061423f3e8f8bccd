import fc from 'fast-check';
import { Frame, FrameDecoder } from './framing';

function drain(dec: FrameDecoder): Frame[] {
  const out: Frame[] = [];
  for (let f = dec.next(); f; f = dec.next()) out.push(f);
  return out;
}
const lines = (frames: Frame[]) => frames.map((f) => (f.type === 'line' ? f.line : `<${f.type}>`));

describe(FrameDecoder.name, () => {
  it('splits lines and strips CR', () => {
    const dec = new FrameDecoder();
    dec.push(Buffer.from('a b\r\nc\n\npartial'));
    expect(lines(drain(dec))).toEqual(['a b', 'c', '']);
    dec.push(Buffer.from(' end\n'));
    expect(lines(drain(dec))).toEqual(['partial end']);
  });

  it('yields the same lines however the stream is split', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[^\n]{0,40}$/), { maxLength: 20 }), fc.array(fc.nat(50)), (ls, cuts) => {
        const bytes = Buffer.from(ls.map((l) => l + '\n').join(''));
        const dec = new FrameDecoder();
        const got: Frame[] = [];
        let at = 0;
        for (const cut of cuts) {
          dec.push(bytes.subarray(at, at + cut));
          at = Math.min(bytes.length, at + cut);
          got.push(...drain(dec));
        }
        dec.push(bytes.subarray(at));
        got.push(...drain(dec));
        expect(lines(got)).toEqual(ls.map((l) => l.replace(/\r$/, '')));
      }),
    );
  });

  it('drops the lines skipLines asks for, however long and however split, then yields the rest', () => {
    const dec = new FrameDecoder(16);
    dec.push(Buffer.from('cmd\nshort\n' + 'x'.repeat(100)));
    expect(lines([dec.next()!])).toEqual(['cmd']);
    dec.skipLines(3);
    expect(drain(dec)).toEqual([]);
    expect(dec.bufferedBytes).toBe(0);
    expect(dec.linesToSkip).toBe(2);
    dec.push(Buffer.from('y'.repeat(50) + '\nthird\nnext\n'));
    expect(lines(drain(dec))).toEqual(['next']);
    expect(dec.linesToSkip).toBe(0);
    expect(() => dec.skipLines(-1)).toThrow(RangeError);
  });

  it('reports an over-long line once, skips it and resumes', () => {
    const dec = new FrameDecoder(16);
    dec.push(Buffer.alloc(10, 'x'));
    expect(drain(dec)).toEqual([]);
    dec.push(Buffer.alloc(1_000_000, 'y'));
    expect(drain(dec)).toEqual([{ type: 'overflow', limit: 16 }]);
    expect(dec.bufferedBytes).toBe(0);
    dec.push(Buffer.from('yyyy\nok\n'));
    expect(lines(drain(dec))).toEqual(['ok']);
  });

  it('rejects a complete line that is over the limit', () => {
    const dec = new FrameDecoder(4);
    dec.push(Buffer.from('abcdefgh\nok\n'));
    expect(lines(drain(dec))).toEqual(['<overflow>', 'ok']);
  });

  it('returns a binary body after its header, whatever bytes it holds', () => {
    const body = Buffer.from([0x0a, 0x00, 0xff, 0x0a, 0x0d]);
    const dec = new FrameDecoder();
    dec.push(Buffer.concat([Buffer.from('CHUNK 0 5\n'), body.subarray(0, 2)]));
    expect(dec.next()).toEqual({ type: 'line', line: 'CHUNK 0 5' });
    dec.expectData(5);
    expect(dec.next()).toBeUndefined();
    dec.push(Buffer.concat([body.subarray(2), Buffer.from('next\n')]));
    const data = dec.next();
    expect(data?.type === 'data' && data.data.equals(body)).toBe(true);
    expect(dec.next()).toEqual({ type: 'line', line: 'next' });
  });

  it('never throws on arbitrary bytes and keeps memory under the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }), (bufs) => {
        const dec = new FrameDecoder(64);
        for (const b of bufs) {
          dec.push(Buffer.from(b));
          for (const f of drain(dec))
            if (f.type === 'line') expect(Buffer.byteLength(f.line)).toBeLessThanOrEqual(64 * 3);
          expect(dec.bufferedBytes).toBeLessThanOrEqual(64 + 300);
        }
      }),
    );
  });
});
