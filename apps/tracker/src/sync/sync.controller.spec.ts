import { encodeOp, ErrorCode, okReply, parseVersionVector, ProtocolError, SYNC_MARKER, SyncCmd } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { DomainError } from '../common/domain.error';
import { stampedOp } from '../testing/factories';
import { peerContext } from '../testing/fake-session';
import { syncTestingProviders, TEST_CLUSTER_KEY } from '../testing/sync-testing';
import { PeerContext } from '../transport/peer.context';
import { SyncPayload } from '../transport/text-line.server';
import { syncProof } from './peer-tracker.client';
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
  let ctx: PeerContext;

  beforeEach(async () => {
    // This is tracker 1 of 3.
    const moduleRef = await Test.createTestingModule({
      controllers: [SyncController],
      providers: syncTestingProviders({ trackerNumber: 1, trackerCount: 3 }),
    }).compile();
    controller = moduleRef.get(SyncController);
    sync = moduleRef.get(SyncService);
    ctx = peerContext();
  });

  /** Says hello as tracker `n` and returns the challenge. */
  function hello(n: string | number, on = ctx): string {
    const reply = controller.hello(payload(SyncCmd.Hello, String(n)), on);
    expect(reply.ok).toBe(true);
    expect(reply.lines).toHaveLength(1);
    return reply.lines[0];
  }

  describe('handshake', () => {
    it('lets a tracker that holds the key in: hello gives a challenge, auth with the proof names the tracker', () => {
      sync.receive(stampedOp({ origin: 3, seq: 4, lamport: 4 }));
      const nonce = hello(2);
      expect(nonce).toMatch(/^[0-9a-f]{32}$/);
      expect(ctx.trackerNumber).toBeUndefined();
      const reply = controller.auth(payload(SyncCmd.Auth, syncProof(TEST_CLUSTER_KEY, nonce, 2)), ctx);
      expect(reply).toEqual(okReply('welcome, tracker 2', ['3:4']));
      expect(ctx.trackerNumber).toBe(2);
    });

    it('gives a fresh challenge each time', () => {
      expect(hello(2)).not.toBe(hello(2));
    });

    it('refuses a proof made with another key', () => {
      const nonce = hello(2);
      const err = refusal(
        () => controller.auth(payload(SyncCmd.Auth, syncProof(Buffer.alloc(32, 8), nonce, 2)), ctx),
        ErrorCode.Forbidden,
      );
      expect(err.message).toMatch(/wrong proof/);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it.each([
      ['for another tracker number', (nonce: string) => syncProof(TEST_CLUSTER_KEY, nonce, 3)],
      ['for another challenge', () => syncProof(TEST_CLUSTER_KEY, 'ab'.repeat(16), 2)],
      ['in uppercase', (nonce: string) => syncProof(TEST_CLUSTER_KEY, nonce, 2).toUpperCase()],
      ['cut short', (nonce: string) => syncProof(TEST_CLUSTER_KEY, nonce, 2).slice(0, 62)],
      ['that is not hex', () => 'z'.repeat(64)],
      ['that is empty', () => ''],
    ])('refuses a proof %s with FORBIDDEN', (_what, proof) => {
      const nonce = hello(2);
      refusal(() => controller.auth(payload(SyncCmd.Auth, proof(nonce)), ctx), ErrorCode.Forbidden);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('refuses auth without hello', () => {
      const err = refusal(
        () => controller.auth(payload(SyncCmd.Auth, syncProof(TEST_CLUSTER_KEY, 'ab'.repeat(16), 2)), ctx),
        ErrorCode.Forbidden,
      );
      expect(err.message).toContain(SyncCmd.Hello);
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('uses a challenge once: after a wrong proof, even the right one needs a new hello', () => {
      const nonce = hello(2);
      refusal(() => controller.auth(payload(SyncCmd.Auth, 'f'.repeat(64)), ctx), ErrorCode.Forbidden);
      refusal(
        () => controller.auth(payload(SyncCmd.Auth, syncProof(TEST_CLUSTER_KEY, nonce, 2)), ctx),
        ErrorCode.Forbidden,
      );
      expect(ctx.trackerNumber).toBeUndefined();
    });

    it('keeps each connection’s challenge to itself', () => {
      const other = peerContext();
      const nonce = hello(2, other);
      refusal(
        () => controller.auth(payload(SyncCmd.Auth, syncProof(TEST_CLUSTER_KEY, nonce, 2)), ctx),
        ErrorCode.Forbidden,
      );
      controller.auth(payload(SyncCmd.Auth, syncProof(TEST_CLUSTER_KEY, nonce, 2)), other);
      expect(other.trackerNumber).toBe(2);
    });

    it.each(['1', '0', '4', '-1', 'two', '2.5', '', '99999'])(
      'refuses hello from tracker number %j (itself, or not another tracker of the file) with FORBIDDEN',
      (n) => {
        refusal(() => controller.hello(payload(SyncCmd.Hello, n), ctx), ErrorCode.Forbidden);
        expect(ctx.challenge).toBeUndefined();
      },
    );

    it.each([
      [SyncCmd.Hello, []],
      [SyncCmd.Hello, ['2', '3']],
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
      stampedOp({ origin: 2, seq: 1, lamport: 1, args: ['a'] }),
      stampedOp({ origin: 3, seq: 1, lamport: 2, args: ['b c'] }),
      stampedOp({ origin: 2, seq: 2, lamport: 3, args: ['d'], requestId: 'c1-2' }),
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
    });

    it('refuses a change with a bad stamp', () => {
      refusal(() => controller.change(payload('create_group', 'g1', 'alice', '0/1/1/1/-')), ErrorCode.BadArguments);
      expect(sync.versionVector()).toEqual(new Map());
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
    const entry = { userId: 'bob', address: '10.0.0.2:7002', groupId: 'g1', fileName: 'f.bin', filePath: '/b/f.bin' };
    let heard: jest.Mock;

    beforeEach(() => {
      heard = jest.fn();
      sync.onRemotePresence(heard);
      ctx.trackerNumber = 2;
    });

    it('hands a tracker’s presence on, under its number', () => {
      controller.presenceReset(ctx);
      controller.presenceSet(payload(SyncCmd.PresenceSet, 'bob', entry.address, 'g1', 'f.bin', '/b/f.bin'), ctx);
      controller.presenceUnset(payload(SyncCmd.PresenceUnset, 'bob', 'g1', 'f.bin'), ctx);
      expect(heard.mock.calls).toEqual([
        [2, 'reset'],
        [2, { on: true, entry }],
        [2, { on: false, entry: { userId: 'bob', groupId: 'g1', fileName: 'f.bin' } }],
      ]);
    });

    it('refuses a bad address', () => {
      refusal(
        () => controller.presenceSet(payload(SyncCmd.PresenceSet, 'bob', 'nowhere', 'g1', 'f', '/f'), ctx),
        ErrorCode.BadArguments,
      );
      expect(heard).not.toHaveBeenCalled();
    });

    it('forgets a tracker’s presence when the link that sent it closes, unless a newer link took over', () => {
      controller.presenceReset(ctx);
      const newer = peerContext();
      newer.trackerNumber = 2;
      controller.presenceReset(newer);
      heard.mockClear();
      ctx.closed();
      expect(heard).not.toHaveBeenCalled();
      newer.closed();
      expect(heard.mock.calls).toEqual([[2, 'reset']]);
    });
  });
});
