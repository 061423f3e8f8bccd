import { GroupStore } from '../groups/group.store';
import { SessionTokenRecord, UserStore } from '../auth/user.store';
import { compareOps, StampedOp } from '@app/protocol';
import { OpLogStore } from '../sync/oplog.store';
import { groupRecord, stampedOp, userRecord } from './factories';

/** Something a contract suite can build a fresh, empty store from, and tear it down again. */
export interface StoreHarness<S> {
  create(): S;
  dispose?(): void;
}

/** Behaviour every `UserStore` must share. Call inside a `describe` per implementation. */
export function userStoreContract(harness: StoreHarness<UserStore>): void {
  let store: UserStore;
  beforeEach(() => (store = harness.create()));
  afterEach(() => harness.dispose?.());

  it('starts empty', () => {
    expect(store.count()).toBe(0);
    expect(store.get('alice')).toBeUndefined();
  });

  it('adds a user and reads every field back', () => {
    const alice = userRecord({ userId: 'alice', passwordHash: 'scrypt$1$2$3$salt$key', createdAt: 1234567890123 });
    expect(store.add(alice)).toBe(true);
    expect(store.get('alice')).toEqual(alice);
    expect(store.count()).toBe(1);
  });

  it('refuses a second user with the same id and keeps the first', () => {
    store.add(userRecord({ userId: 'alice', passwordHash: 'first' }));
    expect(store.add(userRecord({ userId: 'alice', passwordHash: 'second' }))).toBe(false);
    expect(store.get('alice')?.passwordHash).toBe('first');
    expect(store.count()).toBe(1);
  });

  it('treats ids as case-sensitive and exact', () => {
    store.add(userRecord({ userId: 'alice' }));
    expect(store.add(userRecord({ userId: 'Alice' }))).toBe(true);
    expect(store.get('alice ')).toBeUndefined();
    expect(store.get('ALICE')).toBeUndefined();
    expect(store.count()).toBe(2);
  });

  it('does not let a caller change a stored user through the object it passed in or got back', () => {
    const input = { ...userRecord({ userId: 'bob', passwordHash: 'h1' }) };
    store.add(input);
    (input as { passwordHash: string }).passwordHash = 'changed';
    const got = store.get('bob')!;
    (got as { passwordHash: string }).passwordHash = 'changed again';
    expect(store.get('bob')?.passwordHash).toBe('h1');
  });

  it('lists every user ordered by id (code point order)', () => {
    expect(store.all()).toEqual([]);
    const users = ['carol', 'Bob', 'alice', 'a1'].map((userId, i) => userRecord({ userId, createdAt: i }));
    for (const u of users) store.add(u);
    expect(store.all()).toEqual([users[1], users[3], users[2], users[0]]);
  });

  describe('session tokens', () => {
    const token = (tokenHash: string, userId = 'alice', createdAt = 5): SessionTokenRecord => ({
      tokenHash,
      userId,
      createdAt,
      heldBy: 1,
      seenAt: createdAt,
    });

    it('reads a token back by hash, with who holds it since when', () => {
      store.addToken({ tokenHash: 'aa', userId: 'alice', createdAt: 7, heldBy: 2, seenAt: 8 });
      expect(store.token('aa')).toEqual({ tokenHash: 'aa', userId: 'alice', createdAt: 7, heldBy: 2, seenAt: 8 });
      expect(store.token('bb')).toBeUndefined();
    });

    it('records a new holder and time on a token, and nothing for an unknown one', () => {
      store.addToken(token('aa', 'alice', 7));
      expect(store.touchToken('aa', 0, 20)).toBe(true);
      expect(store.token('aa')).toEqual({ tokenHash: 'aa', userId: 'alice', createdAt: 7, heldBy: 0, seenAt: 20 });
      expect(store.touchToken('zz', 1, 30)).toBe(false);
      expect(store.token('zz')).toBeUndefined();
      expect(store.tokens()).toHaveLength(1);
    });

    it('does not let a caller change a stored token through the object it got back', () => {
      store.addToken(token('aa'));
      const got = store.token('aa') as { heldBy: number };
      got.heldBy = 9;
      (store.tokens()[0] as { seenAt: number }).seenAt = 99;
      expect(store.token('aa')).toEqual(token('aa'));
    });

    it('has none at first', () => {
      expect(store.tokens()).toEqual([]);
      expect(store.tokenUser('a'.repeat(64))).toBeUndefined();
    });

    it('adds a token and finds its user by hash', () => {
      expect(store.addToken(token('aa', 'alice', 7))).toBe(true);
      expect(store.addToken(token('bb', 'bob'))).toBe(true);
      expect(store.tokenUser('aa')).toBe('alice');
      expect(store.tokenUser('bb')).toBe('bob');
      expect(store.tokenUser('AA')).toBeUndefined();
      expect(store.tokens()).toContainEqual(token('aa', 'alice', 7));
    });

    it('refuses a second token with the same hash and keeps the first', () => {
      store.addToken(token('aa', 'alice'));
      expect(store.addToken(token('aa', 'bob'))).toBe(false);
      expect(store.tokenUser('aa')).toBe('alice');
      expect(store.tokens()).toHaveLength(1);
    });

    it('lets one user hold several tokens', () => {
      store.addToken(token('aa'));
      store.addToken(token('bb'));
      expect(store.tokens().map((t) => t.userId)).toEqual(['alice', 'alice']);
    });

    it('removes a token, saying whether there was one', () => {
      store.addToken(token('aa'));
      store.addToken(token('bb'));
      expect(store.removeToken('aa')).toBe(true);
      expect(store.removeToken('aa')).toBe(false);
      expect(store.removeToken('zz')).toBe(false);
      expect(store.tokenUser('aa')).toBeUndefined();
      expect(store.tokens()).toEqual([token('bb')]);
    });

    it('lists every token ordered by hash', () => {
      for (const h of ['c1', 'a2', 'b3']) store.addToken(token(h));
      expect(store.tokens().map((t) => t.tokenHash)).toEqual(['a2', 'b3', 'c1']);
    });

    it('keeps tokens apart from users: a token needs no user record', () => {
      store.addToken(token('aa', 'ghost'));
      expect(store.count()).toBe(0);
      expect(store.get('ghost')).toBeUndefined();
      expect(store.tokenUser('aa')).toBe('ghost');
    });
  });

  describe('clear', () => {
    it('forgets every user and every token, and the store works afresh', () => {
      store.add(userRecord({ userId: 'alice', passwordHash: 'old' }));
      store.add(userRecord({ userId: 'bob' }));
      store.addToken({ tokenHash: 'aa', userId: 'alice', createdAt: 1, heldBy: 1, seenAt: 1 });
      store.clear();
      expect(store.count()).toBe(0);
      expect(store.get('alice')).toBeUndefined();
      expect(store.all()).toEqual([]);
      expect(store.tokens()).toEqual([]);
      expect(store.tokenUser('aa')).toBeUndefined();
      expect(store.add(userRecord({ userId: 'alice', passwordHash: 'new' }))).toBe(true);
      expect(store.get('alice')?.passwordHash).toBe('new');
      expect(store.addToken({ tokenHash: 'aa', userId: 'bob', createdAt: 2, heldBy: 0, seenAt: 2 })).toBe(true);
      expect(store.tokenUser('aa')).toBe('bob');
    });

    it('clears an empty store', () => {
      store.clear();
      expect(store.count()).toBe(0);
    });
  });
}

/** Behaviour every `GroupStore` must share. Call inside a `describe` per implementation. */
export function groupStoreContract(harness: StoreHarness<GroupStore>): void {
  let store: GroupStore;
  beforeEach(() => (store = harness.create()));
  afterEach(() => harness.dispose?.());

  describe('create and get', () => {
    it('creates a group and reads it back', () => {
      const g = groupRecord({ groupId: 'g1', owner: 'alice', createdAt: 42 });
      expect(store.create(g)).toBe(true);
      expect(store.get('g1')).toEqual(g);
      expect(store.get('g2')).toBeUndefined();
    });

    it('makes the owner the first and only member', () => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      expect(store.members('g1')).toEqual(['alice']);
      expect(store.isMember('g1', 'alice')).toBe(true);
      expect(store.groupsOf('alice')).toEqual(['g1']);
    });

    it('refuses a duplicate id and keeps the first group untouched', () => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      expect(store.create(groupRecord({ groupId: 'g1', owner: 'bob' }))).toBe(false);
      expect(store.get('g1')?.owner).toBe('alice');
      expect(store.members('g1')).toEqual(['alice']);
      expect(store.isMember('g1', 'bob')).toBe(false);
    });

    it('lists every group ordered by id with its member count', () => {
      store.create(groupRecord({ groupId: 'b', owner: 'alice', createdAt: 1 }));
      store.create(groupRecord({ groupId: 'A', owner: 'bob', createdAt: 2 }));
      store.create(groupRecord({ groupId: 'a', owner: 'carol', createdAt: 3 }));
      store.addMember('b', 'dave');
      expect(store.list()).toEqual([
        { groupId: 'A', owner: 'bob', createdAt: 2, memberCount: 1 },
        { groupId: 'a', owner: 'carol', createdAt: 3, memberCount: 1 },
        { groupId: 'b', owner: 'alice', createdAt: 1, memberCount: 2 },
      ]);
    });

    it('lists nothing when empty', () => {
      expect(store.list()).toEqual([]);
    });
  });

  describe('members', () => {
    beforeEach(() => store.create(groupRecord({ groupId: 'g1', owner: 'alice' })));

    it('keeps members in join order, owner first', () => {
      for (const u of ['zed', 'bob', 'carol', 'aaron']) store.addMember('g1', u);
      expect(store.members('g1')).toEqual(['alice', 'zed', 'bob', 'carol', 'aaron']);
    });

    it('ignores adding a member twice without changing their place', () => {
      store.addMember('g1', 'bob');
      store.addMember('g1', 'carol');
      store.addMember('g1', 'bob');
      expect(store.members('g1')).toEqual(['alice', 'bob', 'carol']);
    });

    it('removes a member; one who joins again goes to the end', () => {
      store.addMember('g1', 'bob');
      store.addMember('g1', 'carol');
      store.removeMember('g1', 'bob');
      expect(store.isMember('g1', 'bob')).toBe(false);
      expect(store.members('g1')).toEqual(['alice', 'carol']);
      store.addMember('g1', 'bob');
      expect(store.members('g1')).toEqual(['alice', 'carol', 'bob']);
    });

    it('changes the owner without changing the member list', () => {
      store.addMember('g1', 'bob');
      store.setOwner('g1', 'bob');
      expect(store.get('g1')?.owner).toBe('bob');
      expect(store.members('g1')).toEqual(['alice', 'bob']);
    });

    it('answers groupsOf with the groups a user is a member of, ordered by id', () => {
      store.create(groupRecord({ groupId: 'c', owner: 'bob' }));
      store.create(groupRecord({ groupId: 'a', owner: 'carol' }));
      store.addMember('a', 'bob');
      store.addMember('g1', 'bob');
      expect(store.groupsOf('bob')).toEqual(['a', 'c', 'g1']);
      expect(store.groupsOf('nobody')).toEqual([]);
    });

    it('has no members for an unknown group', () => {
      expect(store.members('nope')).toEqual([]);
      expect(store.isMember('nope', 'alice')).toBe(false);
    });
  });

  describe('requests', () => {
    beforeEach(() => store.create(groupRecord({ groupId: 'g1', owner: 'alice' })));

    it('records requests oldest first, without duplicates', () => {
      store.addRequest('g1', 'carol');
      store.addRequest('g1', 'bob');
      store.addRequest('g1', 'carol');
      expect(store.requests('g1')).toEqual(['carol', 'bob']);
      expect(store.hasRequest('g1', 'bob')).toBe(true);
      expect(store.hasRequest('g1', 'dave')).toBe(false);
    });

    it('removes a request', () => {
      store.addRequest('g1', 'bob');
      store.addRequest('g1', 'carol');
      store.removeRequest('g1', 'bob');
      expect(store.hasRequest('g1', 'bob')).toBe(false);
      expect(store.requests('g1')).toEqual(['carol']);
    });

    it('keeps requests apart from members', () => {
      store.addRequest('g1', 'bob');
      expect(store.isMember('g1', 'bob')).toBe(false);
      expect(store.members('g1')).toEqual(['alice']);
      expect(store.list()[0].memberCount).toBe(1);
      expect(store.groupsOf('bob')).toEqual([]);
    });

    it('answers requestsOf with the groups a user asked to join, ordered by id', () => {
      store.create(groupRecord({ groupId: 'b', owner: 'carol' }));
      store.create(groupRecord({ groupId: 'a', owner: 'carol' }));
      store.addRequest('g1', 'bob');
      store.addRequest('a', 'bob');
      store.addRequest('b', 'dave');
      expect(store.requestsOf('bob')).toEqual(['a', 'g1']);
      expect(store.requestsOf('carol')).toEqual([]);
    });
  });

  describe('delete', () => {
    it('removes the group with its members and requests, and nothing else', () => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      store.create(groupRecord({ groupId: 'g2', owner: 'alice' }));
      store.addMember('g1', 'bob');
      store.addRequest('g1', 'carol');
      store.addMember('g2', 'bob');
      store.addRequest('g2', 'carol');

      store.delete('g1');

      expect(store.get('g1')).toBeUndefined();
      expect(store.members('g1')).toEqual([]);
      expect(store.requests('g1')).toEqual([]);
      expect(store.isMember('g1', 'bob')).toBe(false);
      expect(store.hasRequest('g1', 'carol')).toBe(false);
      expect(store.groupsOf('bob')).toEqual(['g2']);
      expect(store.groupsOf('alice')).toEqual(['g2']);
      expect(store.requestsOf('carol')).toEqual(['g2']);
      expect(store.list().map((g) => g.groupId)).toEqual(['g2']);
    });

    it('lets the id be used again, starting with no old members or requests', () => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      store.addMember('g1', 'bob');
      store.addRequest('g1', 'carol');
      store.delete('g1');
      expect(store.create(groupRecord({ groupId: 'g1', owner: 'dave' }))).toBe(true);
      expect(store.members('g1')).toEqual(['dave']);
      expect(store.requests('g1')).toEqual([]);
    });
  });

  describe('clear', () => {
    it('forgets every group with its members and requests, and the store works afresh', () => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      store.create(groupRecord({ groupId: 'g2', owner: 'bob' }));
      store.addMember('g1', 'bob');
      store.addRequest('g1', 'carol');
      store.addRequest('g2', 'carol');
      store.clear();
      expect(store.list()).toEqual([]);
      expect(store.get('g1')).toBeUndefined();
      expect(store.members('g1')).toEqual([]);
      expect(store.requests('g1')).toEqual([]);
      expect(store.isMember('g1', 'alice')).toBe(false);
      expect(store.hasRequest('g2', 'carol')).toBe(false);
      expect(store.groupsOf('bob')).toEqual([]);
      expect(store.requestsOf('carol')).toEqual([]);
      expect(store.create(groupRecord({ groupId: 'g1', owner: 'dave' }))).toBe(true);
      store.addMember('g1', 'alice');
      expect(store.members('g1')).toEqual(['dave', 'alice']);
      expect(store.requests('g1')).toEqual([]);
    });

    it('clears an empty store', () => {
      store.clear();
      expect(store.list()).toEqual([]);
    });

    it('is undone with a transaction that throws', () => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      store.addMember('g1', 'bob');
      expect(() =>
        store.transaction(() => {
          store.clear();
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(store.members('g1')).toEqual(['alice', 'bob']);
    });
  });

  describe('transaction', () => {
    beforeEach(() => {
      store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
      store.addMember('g1', 'bob');
      store.addRequest('g1', 'carol');
    });

    it('returns what the work returns and keeps its changes', () => {
      const result = store.transaction(() => {
        store.removeRequest('g1', 'carol');
        store.addMember('g1', 'carol');
        return 'done';
      });
      expect(result).toBe('done');
      expect(store.members('g1')).toEqual(['alice', 'bob', 'carol']);
      expect(store.requests('g1')).toEqual([]);
    });

    it('rolls every change back when the work throws, and rethrows the same error', () => {
      const boom = new Error('boom');
      expect(() =>
        store.transaction(() => {
          store.removeRequest('g1', 'carol');
          store.addMember('g1', 'carol');
          store.removeMember('g1', 'bob');
          store.setOwner('g1', 'carol');
          store.addRequest('g1', 'dave');
          store.create(groupRecord({ groupId: 'g2', owner: 'erin' }));
          throw boom;
        }),
      ).toThrow(boom);
      expect(store.get('g1')?.owner).toBe('alice');
      expect(store.members('g1')).toEqual(['alice', 'bob']);
      expect(store.requests('g1')).toEqual(['carol']);
      expect(store.get('g2')).toBeUndefined();
      expect(store.list().map((g) => g.groupId)).toEqual(['g1']);
    });

    it('rolls back a delete when the work throws', () => {
      expect(() =>
        store.transaction(() => {
          store.delete('g1');
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(store.get('g1')?.owner).toBe('alice');
      expect(store.members('g1')).toEqual(['alice', 'bob']);
      expect(store.requests('g1')).toEqual(['carol']);
    });

    it('keeps working normally after a rolled-back transaction', () => {
      expect(() =>
        store.transaction(() => {
          store.addMember('g1', 'x');
          throw new Error('boom');
        }),
      ).toThrow('boom');
      store.transaction(() => store.addMember('g1', 'dave'));
      expect(store.members('g1')).toEqual(['alice', 'bob', 'dave']);
    });
  });
}

/** Behaviour every `OpLogStore` must share. Call inside a `describe` per implementation. */
export function opLogStoreContract(harness: StoreHarness<OpLogStore>): void {
  let store: OpLogStore;
  beforeEach(() => (store = harness.create()));
  afterEach(() => harness.dispose?.());

  const stamps = (ops: Iterable<StampedOp>) => [...ops].map((op) => `${op.lamport}/${op.origin}/${op.seq}`);
  /** Ops of three trackers whose clocks interleave: (lamport, origin, seq). */
  const mixed = () =>
    [
      [1, 1, 1],
      [1, 2, 1],
      [2, 1, 2],
      [3, 3, 1],
      [3, 2, 2],
      [4, 1, 3],
      [6, 3, 2],
      [5, 2, 3],
    ].map(([lamport, origin, seq]) =>
      stampedOp({ lamport, origin, seq, kind: 'create_group', groupId: `g${origin}-${seq}` }),
    );

  it('starts empty', () => {
    expect([...store.all()]).toEqual([]);
    expect(store.after(new Map(), 10)).toEqual([]);
    expect(store.versionVector()).toEqual(new Map());
    expect(store.last()).toBeUndefined();
    expect(store.maxLamport()).toBe(0);
    expect(store.count()).toBe(0);
    expect(store.hasRequest('r1', 'alice')).toBe(false);
  });

  it('gives the changes that sort after a given one, in the total order, up to a limit', () => {
    for (const op of mixed()) store.append(op);
    expect(stamps(store.following(stampedOp({ lamport: 3, origin: 2, seq: 2 }), 10))).toEqual([
      '3/3/1',
      '4/1/3',
      '5/2/3',
      '6/3/2',
    ]);
    expect(stamps(store.following(stampedOp({ lamport: 1, origin: 1, seq: 1 }), 2))).toEqual(['1/2/1', '2/1/2']);
    // a change that is not stored: the ones after its place
    expect(stamps(store.following(stampedOp({ lamport: 4, origin: 9, seq: 1 }), 10))).toEqual(['5/2/3', '6/3/2']);
    expect(store.following(stampedOp({ lamport: 6, origin: 3, seq: 2 }), 10)).toEqual([]);
  });

  it('stores a change and gives every field back', () => {
    const op = stampedOp({
      kind: 'upload_file',
      groupId: 'g1',
      filePath: '/home/a b/"q" ünï.txt',
      fileSize: 524_289,
      fileHash: 'ab'.repeat(20),
      chunkHashList: `${'cd'.repeat(20)},${'EF'.repeat(20)}`,
      actor: 'alice',
      time: 1_764_140_000_123,
      requestId: 'c1a2-9_x',
      origin: 2,
      seq: 17,
      lamport: 42,
    });
    expect(store.append(op)).toBe(true);
    expect([...store.all()]).toEqual([op]);
    expect(store.last()).toEqual(op);
    expect(store.count()).toBe(1);
  });

  it('keeps an empty actor and request id', () => {
    const op = stampedOp({ kind: 'create_user', userId: 'm', passwordHash: 'plain$pw', actor: '', requestId: '' });
    store.append(op);
    expect([...store.all()]).toEqual([op]);
  });

  it('ignores a change whose (origin, seq) it holds, even with other content, and keeps the first', () => {
    const first = stampedOp({ origin: 1, seq: 1, lamport: 1, kind: 'create_group', groupId: 'first' });
    expect(store.append(first)).toBe(true);
    expect(store.append(first)).toBe(false);
    expect(store.append(stampedOp({ origin: 1, seq: 1, lamport: 9, kind: 'create_group', groupId: 'second' }))).toBe(
      false,
    );
    expect([...store.all()]).toEqual([first]);
    expect(store.count()).toBe(1);
    // the same seq from another origin, or the same origin with another seq, is another change
    expect(store.append(stampedOp({ origin: 2, seq: 1, lamport: 1 }))).toBe(true);
    expect(store.append(stampedOp({ origin: 1, seq: 2, lamport: 1 }))).toBe(true);
    expect(store.count()).toBe(3);
  });

  it('gives every change in the total order (Lamport clock, origin, seq), whatever order they came in', () => {
    const ops = mixed();
    for (const op of [...ops].reverse()) store.append(op);
    const expected = [...ops].sort(compareOps);
    expect([...store.all()]).toEqual(expected);
    expect(stamps(store.all())).toEqual(['1/1/1', '1/2/1', '2/1/2', '3/2/2', '3/3/1', '4/1/3', '5/2/3', '6/3/2']);
    expect(store.last()).toEqual(expected[expected.length - 1]);
    expect(store.maxLamport()).toBe(6);
  });

  it('answers after(vv, limit) with the changes above the vector, in the total order, at most `limit`', () => {
    for (const op of mixed()) store.append(op);
    expect(stamps(store.after(new Map(), 100))).toEqual(stamps(store.all()));
    expect(
      stamps(
        store.after(
          new Map([
            [1, 2],
            [2, 1],
          ]),
          100,
        ),
      ),
    ).toEqual(['3/2/2', '3/3/1', '4/1/3', '5/2/3', '6/3/2']); // origin 3 is missing from the vector: all of it
    expect(stamps(store.after(new Map([[1, 1]]), 3))).toEqual(['1/2/1', '2/1/2', '3/2/2']);
    expect(
      store.after(
        new Map([
          [1, 3],
          [2, 3],
          [3, 2],
        ]),
        100,
      ),
    ).toEqual([]);
    expect(stamps(store.after(new Map([[9, 5]]), 2))).toEqual(['1/1/1', '1/2/1']);
  });

  it('pages through the whole log with after(): each page moves the vector on, and nothing is skipped', () => {
    for (const op of mixed()) store.append(op);
    const vv = new Map<number, number>();
    const seen: string[] = [];
    for (let page = store.after(vv, 3); page.length > 0; page = store.after(vv, 3)) {
      for (const op of page) {
        seen.push(`${op.lamport}/${op.origin}/${op.seq}`);
        vv.set(op.origin, Math.max(vv.get(op.origin) ?? 0, op.seq));
      }
    }
    expect(seen).toEqual(stamps(store.all()));
  });

  it('keeps the highest seq per origin as the version vector', () => {
    for (const op of mixed()) store.append(op);
    expect(store.versionVector()).toEqual(
      new Map([
        [1, 3],
        [2, 3],
        [3, 2],
      ]),
    );
  });

  it('finds a change by the client’s request id and the user who made it, and never by an empty one', () => {
    store.append(stampedOp({ seq: 1, requestId: 'c1-1' }));
    store.append(stampedOp({ seq: 2, requestId: '' }));
    store.append(stampedOp({ origin: 2, seq: 1, requestId: 'c2-7' }));
    expect(store.hasRequest('c1-1', 'alice')).toBe(true);
    expect(store.hasRequest('c2-7', 'alice')).toBe(true);
    expect(store.hasRequest('c1-2', 'alice')).toBe(false);
    expect(store.hasRequest('C1-1', 'alice')).toBe(false);
    expect(store.hasRequest('', 'alice')).toBe(false);
  });

  it('scopes request ids to the user: another user’s id, or one sent before login, never matches', () => {
    store.append(stampedOp({ seq: 1, requestId: 'x1', actor: 'bob' }));
    store.append(
      stampedOp({ seq: 2, requestId: 'x2', actor: '', kind: 'create_user', userId: 'm', passwordHash: 'plain$pw' }),
    );
    expect(store.hasRequest('x1', 'bob')).toBe(true);
    expect(store.hasRequest('x1', 'alice')).toBe(false);
    expect(store.hasRequest('x1', 'Bob')).toBe(false);
    // a change made before login (actor '') is nobody's: no lookup finds it
    expect(store.hasRequest('x2', 'alice')).toBe(false);
    expect(store.hasRequest('x2', '')).toBe(false);
  });

  it('returns what the work of a transaction returns and keeps its changes', () => {
    expect(store.transaction(() => store.append(stampedOp({ seq: 1 })) && 'done')).toBe('done');
    expect(store.count()).toBe(1);
  });

  it('rolls a transaction that throws back, rethrowing the same error', () => {
    store.append(stampedOp({ seq: 1, requestId: 'r1' }));
    const boom = new Error('boom');
    expect(() =>
      store.transaction(() => {
        store.append(stampedOp({ seq: 2, requestId: 'r2' }));
        store.append(stampedOp({ origin: 3, seq: 1, lamport: 9 }));
        throw boom;
      }),
    ).toThrow(boom);
    expect(stamps(store.all())).toEqual(['1/1/1']);
    expect(store.hasRequest('r2', 'alice')).toBe(false);
    expect(store.versionVector()).toEqual(new Map([[1, 1]]));
    expect(store.maxLamport()).toBe(1);
    // and it is usable afterwards: the rolled-back change can be stored now
    expect(store.append(stampedOp({ seq: 2, requestId: 'r2' }))).toBe(true);
    expect(store.hasRequest('r2', 'alice')).toBe(true);
  });
}
