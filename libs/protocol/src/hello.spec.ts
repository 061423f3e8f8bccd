import { formOfFirstBytes, HELLO_START } from './hello';

describe(formOfFirstBytes.name, () => {
  const form = (text: string, final = false) => formOfFirstBytes(Buffer.from(text, 'latin1'), [HELLO_START], final);

  it('is extended once the bytes begin with a framed start, whatever follows', () => {
    expect(form('HELLO ')).toBe('extended');
    expect(form('HELLO p2p-share/2\n')).toBe('extended');
    expect(form('HELLO x', true)).toBe('extended');
  });

  it('is seed as soon as a byte differs', () => {
    expect(form('G')).toBe('seed');
    expect(form('GET_CHUNK 0 /etc/passwd\n')).toBe('seed');
    expect(form('HELLOX')).toBe('seed');
    expect(form('hello ')).toBe('seed');
  });

  it('waits on a prefix of a framed start, unless nothing more will come', () => {
    expect(form('')).toBeUndefined();
    expect(form('HEL')).toBeUndefined();
    expect(form('HEL', true)).toBe('seed');
    expect(form('', true)).toBe('seed');
  });

  it('takes the first of several starts that matches', () => {
    const starts = [HELLO_START, Buffer.from('123456789 ')];
    expect(formOfFirstBytes(Buffer.from('1234'), starts)).toBeUndefined();
    expect(formOfFirstBytes(Buffer.from('123456789 sync_hello'), starts)).toBe('extended');
    expect(formOfFirstBytes(Buffer.from('12x'), starts)).toBe('seed');
  });
});
