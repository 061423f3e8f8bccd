import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { cacheKey, ReadCache } from '../storage/read-cache';
import { SQLITE_DB } from '../storage/storage.tokens';
import { SnapshotRow } from '../storage/snapshot-row';
import { GroupRecord, GroupStore, GroupSummary, readGroupRow } from './group.store';

const EXPORT_PAGE = 256;

interface GroupRow {
  group_id: string;
  owner: string;
  created_at: number;
}

@Injectable()
export class SqliteGroupStore implements GroupStore {
  private readonly sql: ReturnType<typeof prepare>;
  /** list_groups, list_files and download_file look up the same groups and memberships again and again. */
  private readonly cache: ReadCache;

  constructor(@Inject(SQLITE_DB) private readonly db: Database.Database) {
    this.cache = new ReadCache(db);
    this.sql = prepare(db);
  }

  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  create(group: GroupRecord): boolean {
    return this.transaction(() => {
      if (this.sql.insertGroup.run(group.groupId, group.owner, group.createdAt).changes !== 1) return false;
      this.sql.insertMember.run(group.groupId, group.owner);
      this.cache.invalidate();
      return true;
    });
  }

  get(groupId: string): GroupRecord | undefined {
    return this.cache.get(cacheKey('group', groupId), () => {
      const row = this.sql.selectGroup.get(groupId);
      return row && { groupId: row.group_id, owner: row.owner, createdAt: row.created_at };
    });
  }

  list(): GroupSummary[] {
    return this.cache.get('list', () =>
      this.sql.listGroups.all().map((r) => ({
        groupId: r.group_id,
        owner: r.owner,
        createdAt: r.created_at,
        memberCount: r.member_count,
      })),
    );
  }

  members(groupId: string): string[] {
    return this.sql.members.pluck().all(groupId);
  }

  isMember(groupId: string, userId: string): boolean {
    return this.cache.get(
      cacheKey('member', groupId, userId),
      () => this.sql.isMember.get(groupId, userId) !== undefined,
    );
  }

  groupsOf(userId: string): string[] {
    return this.cache.get(cacheKey('groupsOf', userId), () => this.sql.groupsOf.pluck().all(userId));
  }

  addMember(groupId: string, userId: string): void {
    this.sql.insertMember.run(groupId, userId);
    this.cache.invalidate();
  }

  removeMember(groupId: string, userId: string): void {
    this.sql.deleteMember.run(groupId, userId);
    this.cache.invalidate();
  }

  setOwner(groupId: string, userId: string): void {
    this.sql.setOwner.run(userId, groupId);
    this.cache.invalidate();
  }

  delete(groupId: string): void {
    this.sql.deleteGroup.run(groupId);
    this.cache.invalidate();
  }

  addRequest(groupId: string, userId: string): void {
    this.sql.insertRequest.run(groupId, userId);
    this.cache.invalidate();
  }

  hasRequest(groupId: string, userId: string): boolean {
    return this.sql.hasRequest.get(groupId, userId) !== undefined;
  }

  removeRequest(groupId: string, userId: string): void {
    this.sql.deleteRequest.run(groupId, userId);
    this.cache.invalidate();
  }

  requests(groupId: string): string[] {
    return this.sql.requests.pluck().all(groupId);
  }

  clear(): void {
    this.db.exec('DELETE FROM join_requests; DELETE FROM group_members; DELETE FROM groups;');
    this.cache.invalidate();
  }

  requestsOf(userId: string): string[] {
    return this.cache.get(cacheKey('requestsOf', userId), () => this.sql.requestsOf.pluck().all(userId));
  }

  /** A page at a time, so that the caller may write to the database between pages. */
  *exportRows(): Iterable<SnapshotRow> {
    for (let after = ''; ;) {
      const groups = this.sql.groupPage.all(after, EXPORT_PAGE);
      for (const g of groups) yield ['group', g.group_id, g.owner, String(g.created_at)];
      if (groups.length < EXPORT_PAGE) break;
      after = groups[groups.length - 1].group_id;
    }
    for (const [kind, page] of [
      ['member', this.sql.memberPage],
      ['request', this.sql.requestPage],
    ] as const) {
      for (let after = 0; ;) {
        const rows = page.all(after, EXPORT_PAGE);
        for (const r of rows) yield [kind, r.group_id, r.user_id];
        if (rows.length < EXPORT_PAGE) break;
        after = rows[rows.length - 1].seq;
      }
    }
  }

  importRow(row: SnapshotRow): void {
    const read = readGroupRow(row, (groupId) => this.sql.selectGroup.get(groupId) !== undefined);
    if (read.kind === 'group') this.sql.importGroup.run(read.group.groupId, read.group.owner, read.group.createdAt);
    else if (read.kind === 'member') this.sql.insertMember.run(read.groupId, read.userId);
    else this.sql.insertRequest.run(read.groupId, read.userId);
    this.cache.invalidate();
  }
}

function prepare(db: Database.Database) {
  return {
    insertGroup: db.prepare<[string, string, number]>(
      'INSERT OR IGNORE INTO groups (group_id, owner, created_at) VALUES (?, ?, ?)',
    ),
    selectGroup: db.prepare<[string], GroupRow>('SELECT group_id, owner, created_at FROM groups WHERE group_id = ?'),
    listGroups: db.prepare<[], GroupRow & { member_count: number }>(
      `SELECT g.group_id, g.owner, g.created_at, (SELECT count(*) FROM group_members m WHERE m.group_id = g.group_id) AS member_count
       FROM groups g ORDER BY g.group_id`,
    ),
    members: db.prepare<[string], string>('SELECT user_id FROM group_members WHERE group_id = ? ORDER BY seq'),
    isMember: db.prepare<[string, string], { one: number }>(
      'SELECT 1 AS one FROM group_members WHERE group_id = ? AND user_id = ?',
    ),
    groupsOf: db.prepare<[string], string>('SELECT group_id FROM group_members WHERE user_id = ? ORDER BY group_id'),
    insertMember: db.prepare<[string, string]>('INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)'),
    deleteMember: db.prepare<[string, string]>('DELETE FROM group_members WHERE group_id = ? AND user_id = ?'),
    setOwner: db.prepare<[string, string]>('UPDATE groups SET owner = ? WHERE group_id = ?'),
    deleteGroup: db.prepare<[string]>('DELETE FROM groups WHERE group_id = ?'),
    insertRequest: db.prepare<[string, string]>(
      'INSERT OR IGNORE INTO join_requests (group_id, user_id) VALUES (?, ?)',
    ),
    hasRequest: db.prepare<[string, string], { one: number }>(
      'SELECT 1 AS one FROM join_requests WHERE group_id = ? AND user_id = ?',
    ),
    deleteRequest: db.prepare<[string, string]>('DELETE FROM join_requests WHERE group_id = ? AND user_id = ?'),
    requests: db.prepare<[string], string>('SELECT user_id FROM join_requests WHERE group_id = ? ORDER BY seq'),
    requestsOf: db.prepare<[string], string>('SELECT group_id FROM join_requests WHERE user_id = ? ORDER BY group_id'),
    importGroup: db.prepare<[string, string, number]>(
      'INSERT INTO groups (group_id, owner, created_at) VALUES (?, ?, ?)',
    ),
    groupPage: db.prepare<[string, number], GroupRow>(
      'SELECT group_id, owner, created_at FROM groups WHERE group_id > ? ORDER BY group_id LIMIT ?',
    ),
    memberPage: db.prepare<[number, number], { seq: number; group_id: string; user_id: string }>(
      'SELECT seq, group_id, user_id FROM group_members WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    requestPage: db.prepare<[number, number], { seq: number; group_id: string; user_id: string }>(
      'SELECT seq, group_id, user_id FROM join_requests WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
  };
}
