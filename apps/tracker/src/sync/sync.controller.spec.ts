import {
  encodeOp,
  ErrorCode,
  okReply,
  parseVersionVector,
  ProtocolError,
  SeederForm,
  SYNC_MARKER,
  SyncCmd,
} from '@app/protocol';
import { Test } from '@nestjs/testing';
import { DomainError } from '../common/domain.error';
import { stampedOp } from '../testing/factories';
import { peerContext } from '../testing/fake-session';
import {
  inMemoryServiceProviders,
  syncTestingProviders,
  TEST_CLUSTER_KEY,
  tlsPeerContext,
} from '../testing/sync-testing';
import { FilesService } from '../files/files.service';
import { GroupsService } from '../groups/groups.service';
import { PeerContext } from '../transport/peer.context';
import { SyncPayload } from '../transport/text-line.server';
import { checkSyncProof, LinkParties, syncProof, SyncLinkSecurity } from './sync-link.security';
import { SyncController } from './sync.controller';
import { SyncService } from './sync.service';

const payload = (name: string, ...args: string[]): SyncPayload => ({ name, args });

/** Runs `work`, expecting an error the transport answers as `ERR <code>`; returns it. */
function refusal(work: () => unknown, code: ErrorCode): DomainError | ProtocolError {
  let thrown: unknown;
  try {
    work();
  } catch (err) {
    thrown = err;
  }
  expect(thrown instanceof DomainError || thrown instanceof ProtocolError).toBe(true);
  expect((thrown as DomainError).code).toBe(code);
  return thrown as DomainError;
}

describe(SyncController.name, () => {
  let controller: SyncController;
  let sync: SyncService;
  let files: FilesService;
  let groups: GroupsService;
  let ctx: PeerContext;

  beforeEach(async () => {
    // This is tracker 1 of 3.
    const moduleRef = await Test.createTestingModule({
      controllers: [SyncController],
      providers: [
        ...syncTestingProviders({ trackerNumber: 1, trackerCount: 3 }),
        // the services that apply what other trackers send, on in-memory stores
        ...inMemoryServiceProviders(),
      ],
    }).compile();
    controller = moduleRef.get(SyncController);
    sync = moduleRef.get(SyncService);
    files = moduleRef.get(FilesService);
    groups = moduleRef.get(GroupsService);
    ctx = tlsPeerContext();
  });

  const DIALER_NONCE = 'd'.repeat(64);

  /** Says hello as tracker `n`; returns the link's parties and the proof this tracker (1) answered with. */
  function hello(n: string | number, on = ctx, dialerNonce = DIALER_NONCE): { parties: LinkParties; proof: string } {
    const reply = controller.hello(payload(SyncCmd.Hello, String(n), dialerNonce), on);
    expect(reply.ok).toBe(true);
    expect(reply.lines).toHaveLength(2);
    const [listenerNonce, proof] = reply.lines;
    const ekm = on.tls!.exportKeyingMaterial(32, 'EXPORTER-p2p-share-sync');
    return { parties: { dialer: Number(n), listener: 1, dialerNonce, listenerNonce, ekm }, proof };
  }

  const dialerProof = (parties: LinkParties, key = TEST_CLUSTER_KEY) => syncProof(key, 'dialer', parties);

  describe('handshake', () => {
    it('proves the key over the caller’s nonce first, then lets in a caller that proves it back', () => {
      sync.receive(stampedOp({ origin: 3, seq: 4, lamport: 4 }));
      const { parties, proof } = hello(2);
      expect(parties.listenerNonce).toMatch(/^[0-9a-f]{64}$/);
      expect(checkSyncProof(TEST_CLUSTER_KEY, 'listener', parties, proof)).toBe(true);
      expect(ctx.trackerNumber).toBeUndefined();
      expect(ctx.link).toBeUndefined();
      const reply = controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), ctx);
      expect(reply).toEqual(okReply('welcome, tracker 2', ['3:4']));
      expect(ctx.trackerNumber).toBe(2);
      expect(ctx.link).toBeInstanceOf(SyncLinkSecurity);
    });

    it('binds the link to both nonces: the dialer’s seals open on this side', () => {
      const { parties } = hello(2);
      controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), ctx);
      const dialer = SyncLinkSecurity.create(TEST_CLUSTER_KEY, 'dialer', parties);
      const line = `${SYNC_MARKER} ${SyncCmd.Digest}`;
      expect(ctx.link!.openRequest({ type: 'line', line: dialer.sealRequest(line) })).toBe(line);
      const stranger = SyncLinkSecurity.create(TEST_CLUSTER_KEY, 'dialer', { ...parties, dialerNonce: 'e'.repeat(64) });
      expect(() => ctx.link!.openRequest({ type: 'line', line: stranger.sealRequest(line) })).toThrow(/bad MAC/);
    });

    it('refuses hello and auth on a connection that did not begin with STARTTLS', () => {
      const plain = peerContext();
      const hi = refusal(() => controller.hello(payload(SyncCmd.Hello, '2', DIALER_NONCE), plain), ErrorCode.Forbidden);
      expect(hi.message).toBe('sync links need TLS: send STARTTLS first');
      expect(plain.challenge).toBeUndefined();
      const auth = refusal(() => controller.auth(payload(SyncCmd.Auth, 'f'.repeat(64)), plain), ErrorCode.Forbidden);
      expect(auth.message).toBe(`say ${SyncCmd.Hello} first`);
      expect(plain.trackerNumber).toBeUndefined();
      // the TLS check comes before any other: a plain connection learns nothing from its arguments
      expect(refusal(() => controller.hello(payload(SyncCmd.Hello), plain), ErrorCode.Forbidden).message).toBe(
        'sync links need TLS: send STARTTLS first',
      );
    });

    it('binds the proofs to the TLS session: a proof made for another session (a relay) is refused', () => {
      const { parties, proof } = hello(2);
      const relayed = { ...parties, ekm: Buffer.alloc(32, 0x44) };
      expect(checkSyncProof(TEST_CLUSTER_KEY, 'listener', relayed, proof)).toBe(false);
      const err = refusal(() => controller.auth(payload(SyncCmd.Auth, dialerProof(relayed)), ctx), ErrorCode.Forbidden);
      expect(err.message).toMatch(/wrong proof/);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('gives a fresh nonce each time', () => {
      expect(hello(2).parties.listenerNonce).not.toBe(hello(2).parties.listenerNonce);
    });

    it('refuses a proof made with another key', () => {
      const { parties } = hello(2);
      const err = refusal(
        () => controller.auth(payload(SyncCmd.Auth, dialerProof(parties, Buffer.alloc(32, 8))), ctx),
        ErrorCode.Forbidden,
      );
      expect(err.message).toMatch(/wrong proof/);
      expect(ctx.trackerNumber).toBeUndefined();
      expect(ctx.link).toBeUndefined();
    });

    it.each([
      ['for another tracker number', (p: LinkParties) => dialerProof({ ...p, dialer: 3 })],
      ['for another challenge', (p: LinkParties) => dialerProof({ ...p, listenerNonce: 'ab'.repeat(32) })],
      ['reflected: the proof this tracker sent', (p: LinkParties) => syncProof(TEST_CLUSTER_KEY, 'listener', p)],
      ['in uppercase', (p: LinkParties) => dialerProof(p).toUpperCase()],
      ['cut short', (p: LinkParties) => dialerProof(p).slice(0, 62)],
      ['that is not hex', () => 'z'.repeat(64)],
      ['that is empty', () => ''],
    ])('refuses a proof %s with FORBIDDEN', (_what, proof) => {
      const { parties } = hello(2);
      refusal(() => controller.auth(payload(SyncCmd.Auth, proof(parties)), ctx), ErrorCode.Forbidden);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('refuses auth without hello', () => {
      const parties = {
        dialer: 2,
        listener: 1,
        dialerNonce: DIALER_NONCE,
        listenerNonce: 'ab'.repeat(32),
        ekm: Buffer.alloc(32, 0x33),
      };
      const err = refusal(() => controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), ctx), ErrorCode.Forbidden);
      expect(err.message).toContain(SyncCmd.Hello);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('uses a challenge once: after a wrong proof, even the right one needs a new hello', () => {
      const { parties } = hello(2);
      refusal(() => controller.auth(payload(SyncCmd.Auth, 'f'.repeat(64)), ctx), ErrorCode.Forbidden);
      refusal(() => controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), ctx), ErrorCode.Forbidden);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('keeps each connection’s challenge to itself', () => {
      const other = tlsPeerContext();
      const { parties } = hello(2, other);
      refusal(() => controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), ctx), ErrorCode.Forbidden);
      controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), other);
      expect(other.trackerNumber).toBe(2);
    });

    it('refuses a second hello on an authenticated link', () => {
      const { parties } = hello(2);
      controller.auth(payload(SyncCmd.Auth, dialerProof(parties)), ctx);
      refusal(() => controller.hello(payload(SyncCmd.Hello, '2', DIALER_NONCE), ctx), ErrorCode.Forbidden);
    });

    it.each(['1', '0', '4', '-1', 'two', '2.5', '', '99999'])(
      'refuses hello from tracker number %j (itself, or not another tracker of the file) with FORBIDDEN',
      (n) => {
        refusal(() => controller.hello(payload(SyncCmd.Hello, n, DIALER_NONCE), ctx), ErrorCode.Forbidden);
        expect(ctx.challenge).toBeUndefined();
      },
    );

    it.each(['', 'd'.repeat(63), 'D'.repeat(64), 'x'.repeat(64), 'd'.repeat(65)])(
      'refuses hello with the nonce %j',
      (nonce) => {
        refusal(() => controller.hello(payload(SyncCmd.Hello, '2', nonce), ctx), ErrorCode.BadArguments);
        expect(ctx.challenge).toBeUndefined();
      },
    );

    it.each([
      [SyncCmd.Hello, []],
      [SyncCmd.Hello, ['2']],
      [SyncCmd.Hello, ['2', DIALER_NONCE, '3']],
      [SyncCmd.Auth, []],
    ])('answers %s with %j arguments with the usage', (name, args) => {
      const run = () =>
        name === SyncCmd.Hello
          ? controller.hello(payload(name, ...args), ctx)
          : controller.auth(payload(name, ...args), ctx);
      expect(refusal(run, ErrorCode.BadArguments).message).toMatch(new RegExp(`^usage: ${SYNC_MARKER} ${name} `));
    });
  });

  describe('fetch', () => {
    const ops = [
      stampedOp({ origin: 2, seq: 1, lamport: 1, groupId: 'a' }),
      stampedOp({ origin: 3, seq: 1, lamport: 2, kind: 'new_seeder', groupId: 'a', fileName: 'b c', filePath: '/b c' }),
      stampedOp({ origin: 2, seq: 2, lamport: 3, groupId: 'd', requestId: 'c1-2' }),
    ];
    beforeEach(() => {
      for (const op of ops) sync.receive(op);
    });

    it('answers the changes after a version vector, encoded, in the total order', () => {
      expect(controller.fetch(payload(SyncCmd.Fetch, '-', '100'))).toEqual(okReply('3 changes', ops.map(encodeOp)));
      expect(controller.fetch(payload(SyncCmd.Fetch, '2:1', '100'))).toEqual(
        okReply('2 changes', [encodeOp(ops[1]), encodeOp(ops[2])]),
      );
      expect(controller.fetch(payload(SyncCmd.Fetch, '2:2,3:1', '100'))).toEqual(okReply('0 changes', []));
    });

    it('answers at most `limit` changes, and at least one', () => {
      expect(controller.fetch(payload(SyncCmd.Fetch, '-', '2')).lines).toEqual([encodeOp(ops[0]), encodeOp(ops[1])]);
      expect(controller.fetch(payload(SyncCmd.Fetch, '-', '0')).lines).toHaveLength(1);
      expect(controller.fetch(payload(SyncCmd.Fetch, '-', 'x')).lines).toHaveLength(1);
    });

    it('refuses a malformed version vector and a wrong argument count', () => {
      refusal(() => controller.fetch(payload(SyncCmd.Fetch, '2=1', '10')), ErrorCode.BadArguments);
      refusal(() => controller.fetch(payload(SyncCmd.Fetch, '-')), ErrorCode.BadArguments);
    });
  });

  describe('change', () => {
    it('stores and applies a pushed change once', () => {
      const op = stampedOp({ origin: 2, seq: 1, lamport: 1 });
      const tokens = (line: string) => line.split(' ');
      const [name, ...args] = tokens(encodeOp(op));
      expect(controller.change(payload(name, ...args))).toEqual(okReply('applied'));
      expect(controller.change(payload(name, ...args))).toEqual(okReply('duplicate'));
      expect(sync.versionVector()).toEqual(new Map([[2, 1]]));
      expect(groups.list('alice')).toEqual([{ groupId: 'g1', owner: 'alice', memberCount: 1, you: 'owner' }]);
    });

    it('refuses a change with a bad stamp', () => {
      refusal(() => controller.change(payload('create_group', 'g1', 'alice', '0/1/1/1/-')), ErrorCode.BadArguments);
      expect(sync.versionVector()).toEqual(new Map());
      expect(groups.allGroupIds()).toEqual([]);
    });

    it.each([
      ['of an unknown kind', ['drop_everything', 'g1']],
      ['with an arg too many', ['create_group', 'g1', 'g2']],
      ['with an arg too few', ['accept_request', 'g1']],
      ['with a group id no tracker accepts', ['create_group', 'g 1']],
      ['with a file size that is not a number', ['upload_file', 'g1', '/a/f', '1e3', 'a'.repeat(40), 'b'.repeat(40)]],
    ])('refuses a change %s, storing and applying nothing', (_, [name, ...args]) => {
      const error = refusal(
        () => controller.change(payload(name, ...args, 'alice', '2/1/1/1/-')),
        ErrorCode.BadArguments,
      );
      expect(error.message).toContain(name);
      expect(sync.versionVector()).toEqual(new Map());
      expect(groups.allGroupIds()).toEqual([]);
    });
  });

  describe('digest', () => {
    it('answers the state digest and the version vector', () => {
      sync.receive(stampedOp({ origin: 2, seq: 5, lamport: 5 }));
      const reply = controller.digest();
      expect(reply).toEqual(okReply('state digest', [sync.digest(), '2:5']));
      expect(parseVersionVector(reply.lines[1])).toEqual(sync.versionVector());
    });
  });

  describe('presence', () => {
    const H1 = 'a'.repeat(40);
    /** Where alice would download f.bin from here: the seeders the files service lists for it. */
    const whereFrom = () =>
      files.download('alice', 'g1', 'f.bin').seeders.map(({ userId, address, capability, seedForm }) => ({
        userId,
        address,
        capability,
        seedForm: seedForm === true,
      }));
    const set = (on: PeerContext, form = 'seed', address = '10.0.0.2:7002') =>
      controller.presenceSet(payload(SyncCmd.PresenceSet, 'bob', address, 'g1', 'f.bin', '/b/f.bin', form), on);
    const bobBySeed = {
      userId: 'bob',
      address: { host: '10.0.0.2', port: 7002 },
      capability: '/b/f.bin',
      seedForm: true,
    };

    beforeEach(() => {
      // tracker 2 replicated: alice owns g1, bob is a member and shared f.bin (1 byte) from its own client
      [
        { kind: 'create_group', actor: 'alice', groupId: 'g1' } as const,
        { kind: 'join_group', actor: 'bob', groupId: 'g1' } as const,
        { kind: 'accept_request', actor: 'alice', groupId: 'g1', candidate: 'bob' } as const,
        {
          kind: 'upload_file',
          actor: 'bob',
          groupId: 'g1',
          filePath: '/b/f.bin',
          fileSize: 1,
          fileHash: H1,
          chunkHashList: H1,
        } as const,
      ].forEach((op, i) => sync.receive(stampedOp({ ...op, origin: 2, seq: i + 1, lamport: i + 1 })));
      ctx.trackerNumber = 2;
    });

    it("takes a seeder's fingerprint as the optional last word of presence_set, and refuses one that is not", () => {
      const fingerprint = `sha256:${'d'.repeat(64)}`;
      const args = ['bob', '10.0.0.2:7002', 'g1', 'f.bin', '/b/f.bin', 'p2p-share/2'] as const;
      controller.presenceSet(payload(SyncCmd.PresenceSet, ...args, fingerprint), ctx);
      expect(files.download('alice', 'g1', 'f.bin').seeders.map((s) => s.fingerprint)).toEqual([fingerprint]);
      controller.presenceSet(payload(SyncCmd.PresenceSet, ...args), ctx); // an older tracker's line
      expect(files.download('alice', 'g1', 'f.bin').seeders.map((s) => s.fingerprint)).toEqual([undefined]);
      expect(() => controller.presenceSet(payload(SyncCmd.PresenceSet, ...args, 'sha256:zz'), ctx)).toThrow(
        "bad seeder fingerprint 'sha256:zz'",
      );
      expect(() => controller.presenceSet(payload(SyncCmd.PresenceSet, ...args, fingerprint, 'x'), ctx)).toThrow(
        /^usage: /,
      );
    });

    it('lists the seeders a tracker says are online at its clients, in their form, until it takes them back', () => {
      expect(whereFrom()).toEqual([]);
      expect(controller.presenceReset(ctx)).toEqual(okReply(''));
      expect(set(ctx)).toEqual(okReply(''));
      expect(whereFrom()).toEqual([bobBySeed]);
      expect(controller.presenceUnset(payload(SyncCmd.PresenceUnset, 'bob', 'g1', 'f.bin'), ctx)).toEqual(okReply(''));
      expect(whereFrom()).toEqual([]);
      set(ctx, SeederForm.Extended);
      // a seeder of ours gets a capability for alice, never its path
      expect(whereFrom()).toEqual([
        {
          userId: 'bob',
          address: { host: '10.0.0.2', port: 7002 },
          capability: expect.not.stringContaining('/b/f.bin') as string,
          seedForm: false,
        },
      ]);
      controller.presenceReset(ctx);
      expect(whereFrom()).toEqual([]);
    });

    it('keeps each tracker’s presence under its own number', () => {
      controller.presenceReset(ctx);
      set(ctx);
      const tracker3 = peerContext();
      tracker3.trackerNumber = 3;
      controller.presenceReset(tracker3);
      controller.presenceUnset(payload(SyncCmd.PresenceUnset, 'bob', 'g1', 'f.bin'), tracker3);
      expect(whereFrom()).toEqual([bobBySeed]);
    });

    it('refuses a bad address, an unknown form and a wrong argument count, and lists nobody', () => {
      controller.presenceReset(ctx);
      refusal(() => set(ctx, 'seed', 'nowhere'), ErrorCode.BadArguments);
      refusal(() => set(ctx, 'ftp'), ErrorCode.BadArguments);
      refusal(
        () =>
          controller.presenceSet(payload(SyncCmd.PresenceSet, 'bob', '10.0.0.2:7002', 'g1', 'f.bin', '/b/f.bin'), ctx),
        ErrorCode.BadArguments,
      );
      refusal(() => controller.presenceUnset(payload(SyncCmd.PresenceUnset, 'bob', 'g1'), ctx), ErrorCode.BadArguments);
      expect(whereFrom()).toEqual([]);
    });

    it('lists the partial seeders a tracker reports, never as full seeders, until it takes them back or resets', () => {
      const partialFrom = () =>
        files.download('alice', 'g1', 'f.bin').partialSeeders?.map(({ userId, address }) => ({ userId, address }));
      const setPartial = (address = '10.0.0.2:7012') =>
        controller.presencePartialSet(payload(SyncCmd.PresencePartialSet, 'bob', address, 'g1', 'f.bin'), ctx);
      controller.presenceReset(ctx);
      expect(setPartial()).toEqual(okReply(''));
      expect(partialFrom()).toEqual([{ userId: 'bob', address: { host: '10.0.0.2', port: 7012 } }]);
      expect(whereFrom()).toEqual([]);
      expect(controller.presencePartialUnset(payload(SyncCmd.PresencePartialUnset, 'bob', 'g1', 'f.bin'), ctx)).toEqual(
        okReply(''),
      );
      expect(partialFrom()).toEqual([]);
      setPartial();
      controller.presenceReset(ctx);
      expect(partialFrom()).toEqual([]);
      refusal(() => setPartial('nowhere'), ErrorCode.BadArguments);
      refusal(
        () => controller.presencePartialSet(payload(SyncCmd.PresencePartialSet, 'bob', '10.0.0.2:7012', 'g1'), ctx),
        ErrorCode.BadArguments,
      );
      refusal(
        () => controller.presencePartialUnset(payload(SyncCmd.PresencePartialUnset, 'bob', 'g1'), ctx),
        ErrorCode.BadArguments,
      );
      expect(partialFrom()).toEqual([]);
    });

    it('forgets a tracker’s presence when the link that sent it closes, unless a newer link took over', () => {
      controller.presenceReset(ctx);
      set(ctx);
      const newer = peerContext();
      newer.trackerNumber = 2;
      controller.presenceReset(newer);
      set(newer);
      ctx.closed();
      expect(whereFrom()).toEqual([bobBySeed]);
      newer.closed();
      expect(whereFrom()).toEqual([]);
    });
  });
});

describe(`${SyncController.name} with tracker_info.txt pins`, () => {
  const PIN_2 = `sha256:${'2'.repeat(64)}`;
  const OTHER = `sha256:${'9'.repeat(64)}`;
  let controller: SyncController;

  beforeEach(async () => {
    // tracker 1 of 3; tracker_info.txt pins tracker 2 only
    const moduleRef = await Test.createTestingModule({
      controllers: [SyncController],
      providers: [
        ...syncTestingProviders({ trackerNumber: 1, trackerCount: 3, trackerPins: [undefined, PIN_2, undefined] }),
        ...inMemoryServiceProviders(),
      ],
    }).compile();
    controller = moduleRef.get(SyncController);
  });

  const helloAs = (n: number, ctx: PeerContext) => () =>
    controller.hello(payload(SyncCmd.Hello, String(n), 'd'.repeat(64)), ctx);

  it.each([
    ['another certificate', OTHER],
    ['no certificate', undefined],
  ])('refuses hello from tracker 2 presenting %s', (_what, fingerprint) => {
    const ctx = tlsPeerContext(fingerprint);
    const err = refusal(helloAs(2, ctx), ErrorCode.Forbidden);
    expect(err.message).toBe('the certificate of tracker 2 is not the one tracker_info.txt pins');
    expect(ctx.challenge).toBeUndefined();
  });

  it('answers tracker 2 presenting its pinned certificate, and tracker 3 (not pinned) presenting any', () => {
    expect(helloAs(2, tlsPeerContext(PIN_2))().ok).toBe(true);
    expect(helloAs(3, tlsPeerContext(OTHER))().ok).toBe(true);
    expect(helloAs(3, tlsPeerContext(undefined))().ok).toBe(true);
  });
});
