// Scale: one tracker holding a large state (a fixture of users and groups written by the tracker's own code), measured
// over the wire; then a second tracker, started empty, catches up with it through sync.
const { statSync, writeFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { cpuSeconds, currentRss, freePort, peakRss, resetPeakRss, root } = require('../../scripts/lib/procs');
const { LineClient, pipeline } = require('../lib/line-client');
const { sequentialLatency } = require('../lib/load');
const {
  BENCH_TRACKER_FLAGS,
  CHUNK,
  MiB,
  PASSWORD,
  apps,
  connectAll,
  fakeSha1,
  hrSeconds,
  num,
  parallel,
  runNodeScript,
  say,
  sectionDir,
  sleep,
  startProc,
  startTracker,
  stopServer,
} = require('../lib/runtime');
const { fmt, mb } = require('../lib/numbers');

const config = {
  scaleUsers: num('BENCH_SCALE_USERS', 100000, 2000),
  scaleWireUsers: num('BENCH_SCALE_WIRE_USERS', 100, 10),
  catchUpSeconds: num('BENCH_CATCHUP_SECONDS', 300, 60),
  scaleGroups: num('BENCH_SCALE_GROUPS', 10000, 500),
  scaleFiles: num('BENCH_SCALE_FILES', 10000, 500),
  scaleChunks: num('BENCH_SCALE_CHUNKS', 200000, 20000),
};

/** SELECT count(*) FROM oplog of a tracker's database, read-only (safe beside the running tracker: WAL mode). */
function oplogCount(dataDir) {
  try {
    const Database = require(require.resolve('better-sqlite3', { paths: [root] }));
    const db = new Database(join(dataDir, 'tracker.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT count(*) AS n FROM oplog').get().n;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * A tracker holding BENCH_SCALE_USERS users and BENCH_SCALE_GROUPS groups. They are written by bench/lib/tracker-fixture.js,
 * which runs the tracker's own compiled modules on its data dir (state tables and op log, as create_user and
 * create_group write them) with ONE real scrypt hash reused for every user; creating 100,000 users through the wire
 * would take half an hour of scrypt. Then the real tracker starts on that data dir, and the wire proves the fixture
 * real: sample users log in with the password (and a wrong one is refused), list_groups returns every group, and a
 * second tracker started empty catches up from the first through sync.
 */
async function run({ cfg, results }) {
  const dir = sectionDir('scale');
  const ports = [await freePort(), await freePort()];
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, ports.map((p) => `127.0.0.1:${p}\n`).join(''));
  const out = {};
  results.scale = out;
  const U = cfg.scaleUsers;
  const G = cfg.scaleGroups;
  const data1 = join(dir, 'tracker-1-data');

  say(`scale: fixture of ${U} users and ${G} groups, written by the tracker's own code, one scrypt hash for all`);
  const fx = await runNodeScript('tracker-fixture.js', [info, '1', data1, String(U), String(G), PASSWORD]);
  out.fixture = { ...fx, dbMB: mb(statSync(join(data1, 'tracker.db')).size) };
  say(
    `  ${fx.ops} changes in ${fx.seconds.toFixed(1)} s (one ${fx.hashScheme} hash, ${(fx.hashSeconds * 1000).toFixed(0)} ms, ` +
      `reused for every user); tracker.db ${out.fixture.dbMB} MB`,
  );

  let from = process.hrtime.bigint();
  const t = await startTracker(dir, info, 1, 'scale-tracker');
  out.startSeconds = hrSeconds(from);
  const pid = t.child.pid;
  await sleep(500);
  out.rssStartMB = mb(currentRss(pid));

  // the fixture over the wire: sample users log in with the password, a wrong password is refused
  const sample = [...new Set([0, U - 1, ...Array.from({ length: 18 }, (_, i) => Math.floor(((i + 1) * U) / 19))])]
    .filter((i) => i >= 0 && i < U)
    .slice(0, 20);
  const sampleConns = await connectAll(ports[0], sample.length);
  from = process.hrtime.bigint();
  const logins = await parallel(sample, 4, (i, k) => sampleConns[k].request(`login user${i} ${PASSWORD}`));
  out.logins = {
    sampled: sample.length,
    ok: logins.filter((r) => r.ok).length,
    seconds: hrSeconds(from),
  };
  const wrong = await LineClient.connect('127.0.0.1', ports[0]);
  out.logins.wrongPasswordRefused = !(await wrong.request(`login user${U - 2 >= 0 ? U - 2 : 0} not-${PASSWORD}`)).ok;
  wrong.close();
  if (out.logins.ok !== sample.length)
    throw new Error(`only ${out.logins.ok} of ${sample.length} fixture users logged in`);
  if (!out.logins.wrongPasswordRefused) throw new Error('a wrong password was accepted');
  const owner = sampleConns[0]; // user0: owns group0
  say(
    `  tracker started in ${out.startSeconds.toFixed(1)} s, RSS ${out.rssStartMB} MB; ${out.logins.ok}/${sample.length} sampled ` +
      `users logged in (${out.logins.seconds.toFixed(1)} s, scrypt each), a wrong password refused`,
  );

  out.listGroups = await sequentialLatency(owner, 'list_groups', 10);
  const listed = out.listGroups.last.lines.length;
  delete out.listGroups.last;
  out.listGroups.count = listed;
  if (listed !== G) throw new Error(`list_groups gave ${listed} groups, expected ${G}`);
  out.rssAfterLoginsMB = mb(currentRss(pid));

  // some traffic: create_user through the wire (scrypt), then the file rows
  say(`scale: ${cfg.scaleWireUsers} more users through create_user (scrypt)`);
  const creators = await connectAll(ports[0], 4);
  from = process.hrtime.bigint();
  const names = Array.from({ length: cfg.scaleWireUsers }, (_, i) => `wire${i}`);
  await parallel(names, 4, (u, i) => creators[i % 4].ok(`create_user ${u} ${PASSWORD}`));
  out.users = { count: cfg.scaleWireUsers, seconds: hrSeconds(from), rssMB: mb(currentRss(pid)) };
  creators.forEach((c) => c.close());

  say(`scale: ${cfg.scaleFiles} files in one group through upload_file`);
  from = process.hrtime.bigint();
  const uploads = Array.from(
    { length: cfg.scaleFiles },
    (_, i) =>
      `upload_file group0 /bench/scale/file-${i}.bin 1000 ${fakeSha1(`f${i}`)} ${fakeSha1(`c${i}`)} 127.0.0.1:9`,
  );
  const shared = await pipeline(owner, uploads);
  if (shared.some((r) => !r.ok)) throw new Error(`upload_file failed: ${shared.find((r) => !r.ok).message}`);
  out.files = { count: cfg.scaleFiles, seconds: hrSeconds(from), rssMB: mb(currentRss(pid)) };
  out.listFiles = await sequentialLatency(owner, 'list_files group0', 20);
  if (out.listFiles.last.count !== cfg.scaleFiles) throw new Error(`list_files gave ${out.listFiles.last.count} files`);
  delete out.listFiles.last;

  say(`scale: one file of ${cfg.scaleChunks} chunks`);
  const hugeSize = cfg.scaleChunks * CHUNK;
  const hashes = Array.from({ length: cfg.scaleChunks }, (_, i) => fakeSha1(`h${i}`));
  const lines = [];
  for (let i = 0; i < hashes.length; i += 1000) lines.push(hashes.slice(i, i + 1000).join(','));
  from = process.hrtime.bigint();
  // group0 holds the 10,000 files; the huge file goes to a group of its own, which user0 creates
  await owner.ok('create_group scale-huge');
  await owner.ok(
    `upload_file scale-huge /bench/scale/huge.bin ${hugeSize} ${fakeSha1('huge')} @${lines.length} 127.0.0.1:9`,
    lines,
  );
  out.hugeUpload = { chunks: cfg.scaleChunks, seconds: hrSeconds(from) };
  const meta = await sequentialLatency(owner, 'download_file scale-huge huge.bin', 10);
  // what a client does with the reply: the protocol library's own parser
  const { parseFileMetadata } = require(join(apps.dist, 'apps/client/libs/protocol/src'));
  const parseFrom = process.hrtime.bigint();
  const parsed = parseFileMetadata(meta.last.lines);
  const parseMs = hrSeconds(parseFrom) * 1000;
  if (parsed.chunkHashes.length !== cfg.scaleChunks || parsed.chunkHashes[7] !== hashes[7])
    throw new Error('bad metadata');
  delete meta.last;
  out.metadata = { ...meta, clientParseMs: parseMs };
  out.rssEndMB = mb(currentRss(pid));
  out.peakRssMB = mb(peakRss(pid));
  say(
    `  list_groups (${G} groups): p50 ${fmt(out.listGroups.p50Ms)} ms; list_files (${cfg.scaleFiles} files): ` +
      `p50 ${fmt(out.listFiles.p50Ms)} ms; download_file (${cfg.scaleChunks} chunks): p50 ${fmt(out.metadata.p50Ms)} ms ` +
      `+ client parse ${fmt(parseMs)} ms; tracker RSS ${out.rssEndMB} MB (peak ${out.peakRssMB} MB)`,
  );

  out.catchUp = await measureCatchUp(cfg, dir, info, ports, t, data1, owner);
  sampleConns.forEach((c) => c.close());
  await stopServer(t);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Tracker 2 starts with an empty data dir and pulls everything from tracker 1 through sync (bounded by
 * BENCH_CATCHUP_SECONDS). Done when tracker 2 logs that it is linked (its first fetch of what it lacked is over);
 * then its op log must hold as many changes as tracker 1's, and the wire on tracker 2 must show the groups and files.
 */
async function measureCatchUp(cfg, dir, info, ports, t1, data1, owner1) {
  const total = oplogCount(data1);
  const data2 = join(dir, 'tracker-2-data');
  say(`scale: tracker 2 starts empty and catches up ${total} changes from tracker 1 (at most ${cfg.catchUpSeconds} s)`);
  const cpu1 = cpuSeconds(t1.child.pid);
  resetPeakRss(t1.child.pid);
  const from = process.hrtime.bigint();
  const t2 = startProc(
    'tracker 2',
    apps.tracker,
    [info, '2', '--data-dir', data2, ...BENCH_TRACKER_FLAGS],
    dir,
    'scale-tracker2',
  );
  const out = { changes: total };
  try {
    await t2.waitFor(/linked with tracker 1\b/, cfg.catchUpSeconds * 1000);
    out.done = true;
  } catch (err) {
    if (t2.child.exitCode !== null) throw err;
    out.done = false;
  }
  out.seconds = hrSeconds(from);
  out.received = oplogCount(data2);
  out.tracker2RssMB = mb(currentRss(t2.child.pid));
  out.tracker2PeakRssMB = mb(peakRss(t2.child.pid));
  out.tracker2CpuSeconds = cpuSeconds(t2.child.pid);
  out.tracker1CpuSeconds = cpuSeconds(t1.child.pid) - cpu1;
  out.tracker1PeakRssMB = mb(peakRss(t1.child.pid));
  out.changesPerSecond = (out.received ?? 0) / out.seconds;
  if (out.done) {
    // what tracker 2 serves: user0 (a fixture user, owner of group0) logs out of tracker 1 and in on tracker 2, and
    // sees every group and file of tracker 1
    const groups1 = (await owner1.request('list_groups')).lines.length;
    await owner1.ok('logout');
    const c = await LineClient.connect('127.0.0.1', ports[1]);
    out.loginOnTracker2 = (await c.request(`login user0 ${PASSWORD}`)).ok;
    const groups2 = await c.request('list_groups');
    const files2 = await c.request('list_files group0');
    out.groupsOnTracker2 = groups2.ok ? groups2.lines.length : undefined;
    out.groupsOnTracker1 = groups1;
    out.filesOnTracker2 = files2.ok ? files2.count : files2.code;
    c.close();
    out.verified =
      out.loginOnTracker2 &&
      out.groupsOnTracker2 === groups1 &&
      out.filesOnTracker2 === cfg.scaleFiles &&
      out.received >= total;
  }
  say(
    out.done
      ? `  tracker 2 caught up in ${out.seconds.toFixed(1)} s (${fmt(out.changesPerSecond)} changes/s): ${out.received} ` +
          `changes, RSS ${out.tracker2RssMB} MB (peak ${out.tracker2PeakRssMB} MB), CPU ${out.tracker2CpuSeconds.toFixed(1)} s; ` +
          `over the wire ${out.verified ? 'the same groups and files, fixture user logs in' : 'NOT the same state'}`
      : `  tracker 2 had NOT caught up after ${out.seconds.toFixed(0)} s: ${out.received ?? '?'} of ${total} changes ` +
          `(${fmt(out.changesPerSecond)} changes/s), RSS ${out.tracker2RssMB} MB`,
  );
  await stopServer(t2, 10_000);
  return out;
}

function markdown(results) {
  const out = [];
  if (!results.scale?.fixture) return out;
  const s = results.scale;
  const f = s.fixture;
  out.push('## Scale (one tracker holding a large state; the wire measures it)', '');
  out.push(
    `The ${f.users} users and ${f.groups} groups are a fixture: bench/lib/tracker-fixture.js boots the tracker's own ` +
      `compiled modules on its data dir and commits every create_user and create_group through its SyncService ` +
      `(state tables and op log, stamped as the tracker stamps them). **One real scrypt hash (${f.hashScheme}, computed ` +
      `by the tracker's hasher) is reused for every user**, so every password works without ${f.users} scrypt runs; ` +
      `the tracker's code and cost are unchanged. Then the real tracker starts on that data dir.`,
    '',
  );
  out.push('| measure | value |', '|---|---|');
  out.push(
    `| fixture: ${f.users} users + ${f.groups} groups (${f.ops} changes) | ${f.seconds.toFixed(1)} s; tracker.db ${f.dbMB} MB |`,
  );
  out.push(`| tracker start on it / RSS after start | ${s.startSeconds?.toFixed(1)} s / ${s.rssStartMB} MB |`);
  if (s.logins)
    out.push(
      `| sampled fixture users logging in (password) | ${s.logins.ok} of ${s.logins.sampled} in ${s.logins.seconds.toFixed(1)} s; ` +
        `wrong password ${s.logins.wrongPasswordRefused ? 'refused' : '**accepted**'} |`,
    );
  if (s.listGroups)
    out.push(
      `| list_groups with ${s.listGroups.count} groups | p50 ${fmt(s.listGroups.p50Ms)} ms, max ${fmt(s.listGroups.maxMs)} ms, ${(s.listGroups.bytes / 1024).toFixed(0)} KB |`,
    );
  if (s.rssAfterLoginsMB) out.push(`| tracker RSS after the logins and list_groups | ${s.rssAfterLoginsMB} MB |`);
  if (s.users)
    out.push(
      `| ${s.users.count} more users through create_user (scrypt) | ${s.users.seconds.toFixed(1)} s (${fmt(s.users.count / s.users.seconds)}/s); RSS ${s.users.rssMB} MB |`,
    );
  if (s.files)
    out.push(
      `| ${s.files.count} files in one group (upload_file) | ${s.files.seconds.toFixed(1)} s; RSS ${s.files.rssMB} MB |`,
    );
  if (s.listFiles)
    out.push(
      `| list_files on ${s.files.count} files | p50 ${fmt(s.listFiles.p50Ms)} ms, max ${fmt(s.listFiles.maxMs)} ms, ${(s.listFiles.bytes / 1024).toFixed(0)} KB |`,
    );
  if (s.hugeUpload)
    out.push(
      `| upload_file of ${s.hugeUpload.chunks} chunk hashes (@N lines) | ${(s.hugeUpload.seconds * 1000).toFixed(0)} ms |`,
    );
  if (s.metadata)
    out.push(
      `| download_file metadata, ${s.hugeUpload.chunks} chunks | p50 ${fmt(s.metadata.p50Ms)} ms, max ${fmt(s.metadata.maxMs)} ms, ` +
        `${(s.metadata.bytes / MiB).toFixed(1)} MiB; client parse ${fmt(s.metadata.clientParseMs)} ms |`,
    );
  if (s.rssEndMB) out.push(`| tracker RSS after that traffic / peak | ${s.rssEndMB} MB / ${s.peakRssMB} MB |`);
  const c = s.catchUp;
  if (c?.done)
    out.push(
      `| a second tracker, started empty, catches up (sync) | ${c.seconds.toFixed(1)} s for ${c.received} of ${c.changes} changes ` +
        `(${fmt(c.changesPerSecond)}/s); its RSS ${c.tracker2RssMB} MB (peak ${c.tracker2PeakRssMB} MB), CPU ` +
        `${c.tracker2CpuSeconds.toFixed(1)} s; tracker 1 CPU ${c.tracker1CpuSeconds.toFixed(1)} s meanwhile; on the wire: ` +
        `${c.verified ? `a fixture user logs in, ${c.groupsOnTracker2} groups and ${c.filesOnTracker2} files as on tracker 1` : `**not the same state** (groups ${c.groupsOnTracker2} vs ${c.groupsOnTracker1}, files ${c.filesOnTracker2}, login ${c.loginOnTracker2})`} |`,
    );
  else if (c)
    out.push(
      `| a second tracker, started empty, catches up (sync) | **not done within ${c.seconds.toFixed(0)} s**: ${c.received ?? '?'} of ${c.changes} changes ` +
        `(${fmt(c.changesPerSecond)}/s, so about ${fmt(c.changes / Math.max(c.changesPerSecond, 1e-9))} s for all); its RSS ${c.tracker2RssMB} MB |`,
    );
  out.push('');
  return out;
}

function targets(results) {
  const t = [];
  const s = results.scale;
  if (s?.listFiles)
    t.push([`list_files on ${s.files.count} files < 200 ms`, `${fmt(s.listFiles.p50Ms)} ms`, s.listFiles.p50Ms < 200]);
  if (s?.metadata)
    t.push([`${s.hugeUpload.chunks}-chunk metadata < 200 ms`, `${fmt(s.metadata.p50Ms)} ms`, s.metadata.p50Ms < 200]);
  return t;
}

module.exports = { name: 'scale', config, run, markdown, targets };
