import { errReply, formatReply, Frame, okReply, Reply, ReplyAssembler } from '@app/protocol';
import {
  checkSyncProof,
  deriveLinkKey,
  LinkParties,
  newNonce,
  syncProof,
  syncEkm,
  SyncLinkError,
  SyncLinkSecurity,
} from './sync-link.security';

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);
const line = (text: string): Frame => ({ type: 'line', line: text });

function parties(overrides: Partial<LinkParties> = {}): LinkParties {
  return {
    dialer: 1,
    listener: 2,
    dialerNonce: 'a'.repeat(64),
    listenerNonce: 'b'.repeat(64),
    ekm: Buffer.alloc(32, 0x33),
    ...overrides,
  };
}

/** Both ends of one link. */
function link(p = parties(), dialerKey = KEY, listenerKey = KEY) {
  return {
    dialer: SyncLinkSecurity.create(dialerKey, 'dialer', p),
    listener: SyncLinkSecurity.create(listenerKey, 'listener', p),
  };
}

/** What the dialer's reply assembler makes of the bytes the listener writes for `reply`. */
function onTheWire(pieces: { text: string; encoding: BufferEncoding }[]): Reply {
  const bytes = Buffer.concat(pieces.map((p) => Buffer.from(p.text, p.encoding))).toString('utf8');
  const assembler = new ReplyAssembler();
  let reply: Reply | undefined;
  for (const l of bytes.split('\n').slice(0, -1)) reply = assembler.push(l) ?? reply;
  return reply!;
}

describe(SyncLinkSecurity.name, () => {
  describe('proofs', () => {
    it('checks a proof made with the key, for the same role, trackers and nonces', () => {
      const p = parties();
      expect(checkSyncProof(KEY, 'listener', p, syncProof(KEY, 'listener', p))).toBe(true);
      expect(checkSyncProof(KEY, 'dialer', p, syncProof(KEY, 'dialer', p))).toBe(true);
    });

    it.each([
      ['made with another key', (p: LinkParties) => syncProof(OTHER_KEY, 'listener', p)],
      ['reflected: the dialer role', (p: LinkParties) => syncProof(KEY, 'dialer', p)],
      [
        'reflected: trackers swapped',
        (p: LinkParties) => syncProof(KEY, 'listener', { ...p, dialer: p.listener, listener: p.dialer }),
      ],
      ['for another dialer nonce', (p: LinkParties) => syncProof(KEY, 'listener', { ...p, dialerNonce: newNonce() })],
      [
        'for another listener nonce',
        (p: LinkParties) => syncProof(KEY, 'listener', { ...p, listenerNonce: newNonce() }),
      ],
      ['for another tracker', (p: LinkParties) => syncProof(KEY, 'listener', { ...p, dialer: 3 })],
      [
        'for another TLS session (a relay)',
        (p: LinkParties) => syncProof(KEY, 'listener', { ...p, ekm: Buffer.alloc(32, 0x34) }),
      ],
      ['in uppercase', (p: LinkParties) => syncProof(KEY, 'listener', p).toUpperCase()],
      ['cut short', (p: LinkParties) => syncProof(KEY, 'listener', p).slice(0, 62)],
      ['empty', () => ''],
    ])('refuses a listener proof %s', (_what, make) => {
      const p = parties();
      expect(checkSyncProof(KEY, 'listener', p, make(p))).toBe(false);
    });

    it('matches the test vector of docs/PROTOCOL.md 6.1 (v3: bound to the TLS session)', () => {
      // the inputs of 6.2's vector (tracker 2 dials tracker 1), with 32 bytes of 0x33 as the keying material
      const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
      const p: LinkParties = {
        dialer: 2,
        listener: 1,
        dialerNonce: '11'.repeat(32),
        listenerNonce: '22'.repeat(32),
        ekm: Buffer.alloc(32, 0x33),
      };
      expect(syncProof(key, 'listener', p)).toBe('fc79d6a8aa67ebbcf5464a782257ae79f8dfb2c9392a5d640d3055d3a3875153');
      expect(syncProof(key, 'dialer', p)).toBe('5e7284fcf591808bf123c92df90d4f49ad2c8e9fd6a51dbb51082b318d30b0e7');
      // the link key (and so every MAC of 6.2) does not depend on the session
      expect(deriveLinkKey(key, p).toString('hex')).toBe(
        '7d3cd2d9f072bb4a67ed816e23e680bf2ab62c9750ed5edbb33376c9fea10ea6',
      );
    });

    it('takes 32 bytes of keying material under its own exporter label, without context', () => {
      const exportKeyingMaterial = jest.fn((length: number) => Buffer.alloc(length, 1));
      expect(syncEkm({ exportKeyingMaterial })).toEqual(Buffer.alloc(32, 1));
      expect(exportKeyingMaterial.mock.calls).toEqual([[32, 'EXPORTER-p2p-share-sync']]);
    });

    it('gives fresh 32-byte nonces', () => {
      expect(newNonce()).toMatch(/^[0-9a-f]{64}$/);
      expect(newNonce()).not.toBe(newNonce());
    });
  });

  describe('requests (dialer to listener)', () => {
    it('seals lines that the other end opens back, in order', () => {
      const { dialer, listener } = link();
      for (const text of ['123456789 sync_fetch - 2000', '123456789 presence_reset', 'ünïcode ✓ line']) {
        const sealed = dialer.sealRequest(text);
        expect(sealed).toMatch(/ ~[0-9a-f]{64}$/);
        expect(sealed.startsWith(`${text} ~`)).toBe(true);
        expect(listener.openRequest(line(sealed))).toBe(text);
      }
    });

    it('refuses a line without a MAC, with an altered byte, or with an altered MAC', () => {
      const text = '123456789 create_group team alice 1/17/42/1764140000000/c1-9';
      const cases = [
        text,
        link().dialer.sealRequest(text).replace('team', 'tean'),
        link()
          .dialer.sealRequest(text)
          .replace(/.$/, (c) => (c === '0' ? '1' : '0')),
        `${text} ~${'0'.repeat(64)}`,
        `${text} ~`,
      ];
      for (const attempt of cases) {
        expect(() => link().listener.openRequest(line(attempt))).toThrow(SyncLinkError);
      }
    });

    it('refuses a replayed line and lines out of order', () => {
      const { dialer, listener } = link();
      const first = dialer.sealRequest('123456789 op one');
      const second = dialer.sealRequest('123456789 op two');
      expect(listener.openRequest(line(first))).toBe('123456789 op one');
      expect(() => listener.openRequest(line(first))).toThrow(/bad MAC/);
      const again = link();
      const a = again.dialer.sealRequest('x');
      const b = again.dialer.sealRequest('y');
      expect(() => again.listener.openRequest(line(b))).toThrow(SyncLinkError);
      expect(again.listener.openRequest(line(a))).toBe('x');
      expect(second).not.toBe(first);
    });

    it('refuses a line sealed for another link (other nonces), another key, or the other direction', () => {
      const text = '123456789 op x';
      const otherLink = link(parties({ listenerNonce: 'c'.repeat(64) }));
      expect(() => link().listener.openRequest(line(otherLink.dialer.sealRequest(text)))).toThrow(SyncLinkError);
      const wrongKey = link(parties(), OTHER_KEY, KEY);
      expect(() => wrongKey.listener.openRequest(line(wrongKey.dialer.sealRequest(text)))).toThrow(SyncLinkError);
      // a reply's MAC cannot pass as a request's: the direction is part of what is MACed
      const { listener } = link();
      const fresh = link();
      const reply = onTheWire(fresh.listener.sealReply(okReply('')));
      const tag = reply.message.slice(1, 65);
      expect(() => listener.openRequest(line(`OK 0  ~${tag}`))).toThrow(SyncLinkError);
    });

    it('refuses an over-long line', () => {
      expect(() => link().listener.openRequest({ type: 'overflow', limit: 10 })).toThrow(/too long/);
    });

    it('keeps big lines intact and does so fast', () => {
      const { dialer, listener } = link();
      const big = `123456789 upload_file g /f 1 ${'ab'.repeat(20)} ${Array.from({ length: 200_000 }, () => 'f'.repeat(40)).join(',')}`;
      const started = process.hrtime.bigint();
      const opened = listener.openRequest(line(dialer.sealRequest(big)));
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      expect(opened).toBe(big);
      expect(ms).toBeLessThan(1000); // ~8 MB sealed and opened: a few tens of ms unloaded
    });
  });

  describe('replies (listener to dialer)', () => {
    it.each([
      ['an OK without lines', okReply('applied')],
      ['an OK with an empty message', okReply('')],
      ['an OK with lines', okReply('2 changes', ['create_user bob x - 2/1/1/1/-', 'c'])],
      ['an OK with a long line', okReply('1 changes', ['x'.repeat(100_000), 'short'])],
      ['an ERR', errReply('BAD_ARGUMENTS', 'usage: 123456789 sync_fetch <version_vector> <limit>')],
      ['an ERR without message', errReply('FORBIDDEN', '')],
    ])('seals %s so that the dialer opens it back unchanged', (_what, reply) => {
      const { dialer, listener } = link();
      const wire = onTheWire(listener.sealReply(reply));
      expect(wire.message).toMatch(/^~[0-9a-f]{64} /);
      expect(dialer.openReply(wire)).toEqual(reply);
    });

    it('refuses a forged, altered, replayed or unsealed reply', () => {
      const { dialer, listener } = link();
      const first = onTheWire(listener.sealReply(okReply('applied')));
      expect(dialer.openReply(first)).toEqual(okReply('applied'));
      expect(() => dialer.openReply(first)).toThrow(SyncLinkError); // replayed: counter 1 expected
      const next = link();
      expect(() => next.dialer.openReply(okReply('applied'))).toThrow(/no MAC/);
      const sealed = onTheWire(next.listener.sealReply(okReply('1 changes', ['create_group team alice'])));
      const altered: Reply = { ...sealed, lines: ['create_group team mallory'] } as Reply;
      expect(() => next.dialer.openReply(altered)).toThrow(SyncLinkError);
      const asErr: Reply = errReply('FORBIDDEN', sealed.message);
      expect(() => link().dialer.openReply(asErr)).toThrow(SyncLinkError);
    });

    it('refuses a reply sealed with another key', () => {
      const { dialer, listener } = link(parties(), KEY, OTHER_KEY);
      expect(() => dialer.openReply(onTheWire(listener.sealReply(okReply('applied'))))).toThrow(SyncLinkError);
    });

    it('writes exactly the bytes of the unsealed reply, with the tag in the header', () => {
      const reply = okReply('1 changes', ['x']);
      const pieces = link().listener.sealReply(reply);
      const text = pieces.map((p) => p.text).join('');
      expect(text.replace(/~[0-9a-f]{64} /, '')).toBe(formatReply(reply));
    });
  });

  it('lets each side do only its own part', () => {
    const { dialer, listener } = link();
    expect(() => listener.sealRequest('x')).toThrow();
    expect(() => dialer.sealReply(okReply(''))).toThrow();
  });
});
