#!/usr/bin/env node
// Gives a tracker a large, real state quickly: <users> users and <groups> groups in <data-dir>, written by the
// tracker's own compiled code (dist/), not by SQL of ours. It boots the tracker's Nest module as an application
// context (no transport, nothing listens), exactly as `main.ts` configures it from the same arguments, and commits
// every change through the tracker's SyncService: the state tables AND the op log rows, with origin/seq/Lamport
// stamps and request ids, are what a tracker writes when clients send create_user and create_group.
//
// Two shortcuts, both outside the tracker's code:
// - scrypt runs once: the password hash comes from the tracker's own PASSWORD_HASHER (its production cost, a fresh
//   salt) and is reused for every user, so that every user's password works but no two hashes are computed.
//   create_user commits exactly { kind: 'create_user', actor: '', userId, passwordHash } after hashing.
// - changes are committed in batches of one SQLite transaction each (the tracker's own transactions nest inside as
//   savepoints), so there is one fsync per batch instead of one per change.
//
//   node tracker-fixture.js <tracker_info> <tracker_number> <data-dir> <users> <groups> <password> [--key-file F]
// prints one JSON line: { users, groups, ops, seconds, hashSeconds, hashScheme }.
// User i is `user<i>`; group j is `group<j>`, owned by user<j mod users> (its only member).
const { readFileSync, existsSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..', '..');
// the bench runs the apps from a copy of dist/ (BENCH_DIST) that a concurrent rebuild cannot empty
const dist = (p) => join(process.env.BENCH_DIST ?? join(root, 'dist'), 'apps/tracker/apps/tracker/src', p);
const BATCH = 5000;

async function main() {
  const [info, number, dataDir, usersText, groupsText, password, ...rest] = process.argv.slice(2);
  const users = Number(usersText);
  const groups = Number(groupsText);
  if (!password || !(users >= 1) || !(groups >= 0))
    throw new Error(
      'usage: tracker-fixture.js <tracker_info> <n> <data-dir> <users> <groups> <password> [--key-file F]',
    );
  if (existsSync(join(dataDir, 'tracker.db'))) throw new Error(`${dataDir} holds a tracker database already`);

  require(require.resolve('reflect-metadata', { paths: [root] }));
  const { NestFactory } = require(require.resolve('@nestjs/core', { paths: [root] }));
  const { parseTrackerArgs } = require(dist('config/tracker.config'));
  const { TrackerModule } = require(dist('tracker.module'));
  const { SyncService } = require(dist('sync/sync.service'));
  const { GroupsService } = require(dist('groups/groups.service'));
  const { PASSWORD_HASHER } = require(dist('auth/auth.tokens'));
  const { SQLITE_DB } = require(dist('storage/storage.tokens'));
  const { requestContext } = require(dist('common/request-context'));

  const t0 = process.hrtime.bigint();
  const config = parseTrackerArgs([info, number, '--data-dir', dataDir, ...rest], (p) => readFileSync(p, 'utf8'));
  const app = await NestFactory.createApplicationContext(TrackerModule.forRoot(config), { logger: false });
  try {
    const hasher = app.get(PASSWORD_HASHER);
    const h0 = process.hrtime.bigint();
    const passwordHash = await hasher.hash(password);
    const hashSeconds = Number(process.hrtime.bigint() - h0) / 1e9;
    if (!(await hasher.verify(password, passwordHash))) throw new Error('the tracker hasher refuses its own hash');
    const sync = app.get(SyncService);
    const groupsService = app.get(GroupsService);
    const db = app.get(SQLITE_DB);

    // like a client's `#<prefix>-<n>` request ids, so that the op log's request index is as full as in real use
    const asRequest = (id, work) => requestContext.run({ requestId: `fixture-${id}` }, work);
    let ops = 0;
    const inBatches = (count, one) => {
      for (let from = 0; from < count; from += BATCH) {
        db.transaction(() => {
          for (let i = from; i < Math.min(count, from + BATCH); i++) {
            one(i);
            ops++;
          }
        })();
      }
    };
    // what AuthService.createUser commits once the hash is computed
    inBatches(users, (i) =>
      asRequest(`u${i}`, () => sync.commit({ kind: 'create_user', actor: '', userId: `user${i}`, passwordHash })),
    );
    // the groups service's own create(): validation, then its commit
    inBatches(groups, (j) => asRequest(`g${j}`, () => groupsService.create(`user${j % users}`, `group${j}`)));

    const [scheme, N, r, p] = passwordHash.split('$');
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(
      JSON.stringify({ users, groups, ops, seconds, hashSeconds, hashScheme: `${scheme} N=${N} r=${r} p=${p}` }) + '\n',
    );
  } finally {
    await app.close();
  }
}

main().then(
  () => process.exit(0), // the app context's peer links may hold timers; the database is closed by now
  (err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);
