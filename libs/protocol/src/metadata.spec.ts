import fc from 'fast-check';
import { parseCommand } from './commands';
import { ProtocolError } from './errors';
import {
  continuationLines,
  encodeChunkHashes,
  FileMetadata,
  formatFileMetadata,
  MAX_INLINE_HASHES,
  parseChunkHashes,
  parseFileMetadata,
  withContinuation,
  digestsToHexList,
  hexListToDigests,
  DigestsLine,
  metadataReplyLines,
} from './metadata';

const hash = (i: number) => i.toString(16).padStart(40, '0');

describe('file metadata', () => {
  const meta: FileMetadata = {
    fileName: 'report, final.pdf',
    fileSize: 1_048_577,
    fileHash: hash(99),
    chunkHashes: [hash(1), hash(2), hash(3)],
    seeders: [
      { userId: 'alice', address: { host: '127.0.0.1', port: 7001 }, capability: '/home/a/report, final.pdf' },
      { userId: 'bob', address: { host: '::1', port: 7002 }, capability: '/srv/100%/r.pdf', seedForm: true },
    ],
  };

  it('writes the seed key:value lines in the seed order, then seeder_hosts, seeder_protocols and the partial seeders', () => {
    const lines = formatFileMetadata(meta);
    expect(lines.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
      'file_name',
      'file_size',
      'file_hash',
      'chunk_hashes',
      'seeders',
      'seeder_ports',
      'seeder_file_paths',
      'seeder_hosts',
      'seeder_protocols',
      'partial_seeders',
      'partial_seeder_hosts',
      'partial_seeder_ports',
      'partial_seeder_file_paths',
      'seeder_fingerprints',
      'partial_seeder_fingerprints',
    ]);
    expect(lines.slice(9)).toEqual([
      'partial_seeders:',
      'partial_seeder_hosts:',
      'partial_seeder_ports:',
      'partial_seeder_file_paths:',
      'seeder_fingerprints:-,-',
      'partial_seeder_fingerprints:',
    ]);
    expect(lines[4]).toBe('seeders:alice,bob');
    expect(lines[5]).toBe('seeder_ports:7001,7002');
    expect(lines[6]).toBe('seeder_file_paths:/home/a/report%2C final.pdf,/srv/100%25/r.pdf');
    expect(lines[8]).toBe('seeder_protocols:p2p-share/2,seed');
  });

  it('round-trips partial seeders, which never appear in the seven seed lines', () => {
    const withPartial = {
      ...meta,
      partialSeeders: [
        { userId: 'carol', address: { host: '127.0.0.3', port: 7003 }, capability: 'cap%2Cc' },
        { userId: 'dave', address: { host: '::1', port: 7004 }, capability: 'capd' },
      ],
    };
    const lines = formatFileMetadata(withPartial);
    expect(lines.slice(0, 7).join('\n')).not.toMatch(/carol|dave|7003|7004/);
    expect(lines.slice(9)).toEqual([
      'partial_seeders:carol,dave',
      'partial_seeder_hosts:127.0.0.3,::1',
      'partial_seeder_ports:7003,7004',
      'partial_seeder_file_paths:cap%252Cc,capd',
      'seeder_fingerprints:-,-',
      'partial_seeder_fingerprints:-,-',
    ]);
    const back = parseFileMetadata(lines);
    expect(back.partialSeeders).toEqual(withPartial.partialSeeders.map((s) => ({ ...s, partial: true })));
    expect(back.seeders.map((s) => s.userId)).toEqual(['alice', 'bob']);
    expect(parseFileMetadata(lines.slice(0, 9)).partialSeeders).toBeUndefined();
    expect(() => parseFileMetadata([...lines.slice(0, 11), 'partial_seeder_ports:7003', lines[12]])).toThrow(
      /partial seeder lists differ/,
    );
  });

  it('reads seeder_protocols into seedForm; without the line every seeder is ours', () => {
    const lines = formatFileMetadata(meta);
    expect(parseFileMetadata(lines).seeders.map((s) => s.seedForm)).toEqual([undefined, true]);
    const older = parseFileMetadata(lines.slice(0, 8));
    expect(older.seeders.map((s) => s.seedForm)).toEqual([undefined, undefined]);
    expect(older.seeders.map((s) => s.capability)).toEqual(meta.seeders.map((s) => s.capability));
    const replaced = (value: string) => lines.map((l) => (l.startsWith('seeder_protocols:') ? value : l));
    expect(() => parseFileMetadata(replaced('seeder_protocols:seed'))).toThrow(/differ in length/);
    expect(() => parseFileMetadata(replaced('seeder_protocols:seed,p2p-share/9'))).toThrow(/unknown protocol/);
  });

  it("carries each seeder's certificate fingerprint in the extended lines only, - for none", () => {
    const fpA = `sha256:${'ab'.repeat(32)}`;
    const fpC = `sha256:${'cd'.repeat(32)}`;
    const withTls = {
      ...meta,
      seeders: [{ ...meta.seeders[0], fingerprint: fpA }, meta.seeders[1]],
      partialSeeders: [
        {
          userId: 'carol',
          address: { host: '127.0.0.3', port: 7003 },
          capability: 'c',
          partial: true,
          fingerprint: fpC,
        },
        { userId: 'dave', address: { host: '127.0.0.4', port: 7004 }, capability: 'd', partial: true },
      ],
    };
    const lines = formatFileMetadata(withTls);
    expect(lines.slice(0, 7).join('\n')).not.toContain('sha256:');
    expect(lines).toContain(`seeder_fingerprints:${fpA},-`);
    expect(lines).toContain(`partial_seeder_fingerprints:${fpC},-`);
    expect(parseFileMetadata(lines)).toEqual(withTls);
    // an older tracker sends no fingerprint lines: every seeder is spoken to in clear
    const older = parseFileMetadata(lines.filter((l) => !l.includes('fingerprints:')));
    expect(older.seeders.map((s) => s.fingerprint)).toEqual([undefined, undefined]);
    const replaced = (value: string) => lines.map((l) => (l.startsWith('seeder_fingerprints:') ? value : l));
    expect(() => parseFileMetadata(replaced(`seeder_fingerprints:${fpA}`))).toThrow(/differs in length/);
    expect(() => parseFileMetadata(replaced('seeder_fingerprints:sha256:00,-'))).toThrow(
      /bad fingerprint for seeder alice/,
    );
  });

  it('round-trips', () => {
    expect(parseFileMetadata(formatFileMetadata(meta))).toEqual(meta);
  });

  it('writes raw chunk digests exactly as it writes their hex forms', () => {
    const { chunkHashes, ...rest } = meta;
    const packed = { ...rest, chunkDigests: Buffer.from(chunkHashes.join(''), 'hex') };
    expect(formatFileMetadata(packed)).toEqual(formatFileMetadata(meta));
    expect(formatFileMetadata({ ...rest, chunkDigests: Buffer.alloc(0) })[3]).toBe('chunk_hashes:');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 * 40 }), (bytes) => {
        const digests = Buffer.from(bytes.subarray(0, bytes.length - (bytes.length % 20)));
        const hex = digests.toString('hex').match(/.{40}/g) ?? [];
        expect(formatFileMetadata({ ...rest, chunkDigests: digests })).toEqual(
          formatFileMetadata({ ...rest, chunkHashes: hex }),
        );
      }),
    );
  });

  it('turns raw digests into the hex list and back, refusing any other text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 * 30 }), (bytes) => {
        const digests = Buffer.from(bytes.subarray(0, bytes.length - (bytes.length % 20)));
        const text = digestsToHexList(digests);
        expect(text).toBe((digests.toString('hex').match(/.{40}/g) ?? []).join(','));
        expect(hexListToDigests(text)).toEqual(digests);
        expect(hexListToDigests(text.toUpperCase())).toEqual(digests);
      }),
    );
    const two = `${hash(1)},${hash(2)}`;
    for (const bad of [`${two},`, two.replace(',', ';'), `${two.slice(0, -1)}g`, hash(1).slice(1), `,${hash(1)}`]) {
      expect(hexListToDigests(bad)).toBeUndefined();
    }
  });

  it('writes a long chunk_hashes line in pieces of at most 64 KiB that add up to the line', () => {
    for (const count of [0, 1, 1559, 1560, 1561, 204_800]) {
      const digests = Buffer.alloc(count * 20);
      for (let i = 0; i < digests.length; i++) digests[i] = (i * 7 + (i >> 5)) & 255;
      const line = new DigestsLine(digests);
      const pieces = [...line.chunks()];
      expect(pieces.every((p) => p.length <= 64 * 1024)).toBe(true);
      const text = Buffer.concat(pieces).toString('latin1');
      expect(text).toBe(`chunk_hashes:${digestsToHexList(digests)}`);
      expect(line.length).toBe(text.length);
      expect(String(line)).toBe(text);
    }
    const { chunkHashes, ...rest } = meta;
    const packed = { ...rest, chunkDigests: Buffer.from(chunkHashes.join(''), 'hex') };
    expect(metadataReplyLines(packed).map(String)).toEqual(formatFileMetadata(meta));
  });

  it('refuses raw digests that are not whole 20-byte SHA-1s', () => {
    const packed = { ...meta, chunkHashes: undefined, chunkDigests: Buffer.alloc(21) };
    expect(() => formatFileMetadata(packed)).toThrow(RangeError);
  });

  it('refuses metadata with missing or inconsistent fields', () => {
    const lines = formatFileMetadata(meta);
    expect(() => parseFileMetadata(lines.slice(1))).toThrow(ProtocolError);
    expect(() =>
      parseFileMetadata(lines.map((l) => (l.startsWith('seeder_ports:') ? 'seeder_ports:7001' : l))),
    ).toThrow(/differ in length/);
    expect(() => parseFileMetadata(lines.map((l) => (l.startsWith('file_hash:') ? 'file_hash:xyz' : l)))).toThrow(
      ProtocolError,
    );
  });
});

describe('chunk hash lists', () => {
  it('travel inline when short', () => {
    const hashes = [hash(1), hash(2)];
    expect(encodeChunkHashes(hashes)).toEqual({ arg: `${hash(1)},${hash(2)}`, lines: [] });
  });

  it('travel as @N continuation lines when long, and read back whole', () => {
    const hashes = Array.from({ length: 2500 }, (_, i) => hash(i));
    const { arg, lines } = encodeChunkHashes(hashes);
    expect(arg).toBe('@3');
    expect(lines).toHaveLength(3);
    const cmd = parseCommand(`upload_file g1 /f 1 ${hash(0)} ${arg} 7001`);
    expect(continuationLines(cmd)).toBe(3);
    const whole = withContinuation(cmd, lines);
    expect(whole.kind === 'upload_file' && parseChunkHashes(whole.chunkHashes)).toEqual(hashes);
  });

  it('an inline list needs no continuation', () => {
    const cmd = parseCommand(`upload_file g1 /f 1 ${hash(0)} ${hash(1)} 7001`);
    expect(continuationLines(cmd)).toBe(0);
    expect(encodeChunkHashes(Array(MAX_INLINE_HASHES).fill(hash(1))).lines).toEqual([]);
  });

  it.each(['@0', '@x', '@99999999'])('refuses %s', (arg) => {
    expect(() => continuationLines(parseCommand(`upload_file g1 /f 1 ${hash(0)} ${arg} 7001`))).toThrow(ProtocolError);
  });

  it('refuses hashes that are not hex SHA-1', () => {
    expect(() => parseChunkHashes('abc')).toThrow(ProtocolError);
    expect(parseChunkHashes('')).toEqual([]);
    expect(parseChunkHashes(hash(5).toUpperCase())).toEqual([hash(5)]);
  });

  it('names the first bad hash of a long list, whatever is wrong with it', () => {
    const good = Array.from({ length: 2000 }, (_, i) => hash(i));
    expect(parseChunkHashes(good.join(','))).toEqual(good);
    const bad = (list: string[]) => () => parseChunkHashes(list.join(','));
    expect(bad([...good.slice(0, 7), hash(7).slice(1), ...good.slice(8)])).toThrow('chunk hash 7 is not');
    expect(bad([...good.slice(0, 9), `${hash(9).slice(1)}g`, ...good.slice(10)])).toThrow('chunk hash 9 is not');
    expect(bad([...good, ''])).toThrow('chunk hash 2000 is not');
    expect(bad([`${hash(0)},${hash(1)}`.replace(',', ';')])).toThrow('chunk hash 0 is not');
  });
});
