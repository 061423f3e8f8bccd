import { GroupStore } from '../groups/group.store';
import { UserStore } from '../auth/user.store';
import { groupRecord, userRecord } from './factories';

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
