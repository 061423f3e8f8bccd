// Tracker load: a closed loop of list_groups / list_files / download_file against a bare PING/PONG server, then the
// same mix while tracker 2 replicates a stream of create_group.
const { existsSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { cpuSeconds, freePort, peakRss, resetPeakRss, root } = require('../../scripts/lib/procs');
const { LineClient, pipeline } = require('../lib/line-client');
const { closedLoop } = require('../lib/load');
const {
  CHUNK,
  MiB,
  PASSWORD,
  connectAll,
  fakeSha1,
  hrSeconds,
  list,
  num,
  parallel,
  say,
  sectionDir,
  sleep,
  startProc,
  startTracker,
  stopServer,
  waitForFile,
} = require('../lib/runtime');
const { fmt, mb, pctOf } = require('../lib/numbers');

const config = {
  loadConns: list('BENCH_LOAD_CONNS', '50,500', '20,100').map(Number),
  loadSeconds: num('BENCH_LOAD_SECONDS', 10, 2),
  loadFiles: 20,
};

async function run({ cfg, results }) {
  const dir = sectionDir('tracker');
  const ports = [await freePort(), await freePort()];
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, ports.map((p) => `127.0.0.1:${p}\n`).join(''));
  const t1 = await startTracker(dir, info, 1, 'load-tracker1');
  const t2 = await startTracker(dir, info, 2, 'load-tracker2');
  const maxConns = Math.max(...cfg.loadConns);
  say(`tracker load: creating and logging in ${maxConns} users (scrypt), a group with ${cfg.loadFiles} files`);
  const owner = await LineClient.connect('127.0.0.1', ports[0]);
  await owner.ok(`create_user loadowner ${PASSWORD}`);
  await owner.ok(`create_user syncprobe ${PASSWORD}`);
  await owner.ok(`login loadowner ${PASSWORD}`);
  await owner.ok('create_group load');
  const fileSize = 64 * MiB;
  const chunks = Array.from({ length: fileSize / CHUNK }, (_, i) => fakeSha1(`chunk${i}`));
  for (let f = 0; f < cfg.loadFiles; f++) {
    await owner.ok(
      `upload_file load /bench/load/file${f}.bin ${fileSize} ${fakeSha1(`file${f}`)} ${chunks.join(',')} 127.0.0.1:9`,
    );
  }
  const clients = await connectAll(ports[0], maxConns);
  const setupFrom = process.hrtime.bigint();
  await parallel(clients, 8, async (c, i) => {
    await c.ok(`create_user load${i} ${PASSWORD}`);
    await c.ok(`login load${i} ${PASSWORD}`);
    await c.ok('join_group load');
  });
  await pipeline(
    owner,
    clients.map((_, i) => `accept_request load load${i}`),
  );
  say(`  ${maxConns} users logged in and members in ${hrSeconds(setupFrom).toFixed(1)} s`);

  const portFile = join(dir, 'ping.port');
  const ping = startProc('ping', join(__dirname, '..', 'lib', 'ping-server.js'), [portFile], dir);
  const pingClients = await connectAll(Number(await waitForFile(portFile)), maxConns);

  const mix = (conn, n) => {
    switch ((conn + n) % 3) {
      case 0:
        return 'list_groups';
      case 1:
        return 'list_files load';
      default:
        return `download_file load file${(conn * 7 + n) % cfg.loadFiles}.bin`;
    }
  };
  const measure = async (proc, conns, request) => {
    resetPeakRss(proc.child.pid);
    const cpu0 = cpuSeconds(proc.child.pid);
    const r = await closedLoop(conns, request, { seconds: cfg.loadSeconds });
    r.serverCpuSeconds = cpuSeconds(proc.child.pid) - cpu0;
    r.serverPeakRssMB = mb(peakRss(proc.child.pid));
    return r;
  };
  results.tracker = [];
  for (const n of cfg.loadConns) {
    const bare = await measure(ping, pingClients.slice(0, n), () => 'PING');
    const mixed = await measure(t1, clients.slice(0, n), mix);
    const row = { connections: n, tracker: mixed, ping: bare, ofPing: mixed.rps / bare.rps };
    results.tracker.push(row);
    say(
      `  ${n} connections: tracker ${fmt(mixed.rps)} req/s (p50 ${fmt(mixed.p50Ms)} ms, p99 ${fmt(mixed.p99Ms)} ms, ` +
        `errors ${mixed.errReplies + mixed.failures + mixed.timeouts}, RSS ${mixed.serverPeakRssMB} MB); ` +
        `ping ${fmt(bare.rps)} req/s (p99 ${fmt(bare.p99Ms)} ms): ${(100 * row.ofPing).toFixed(0)}%`,
    );
  }
  results.trackerSync = await measureWhileSyncing(cfg, ports, clients, owner, t1, t2, mix, measure);
  say(
    `  while syncing: ${results.trackerSync.measured ? `${fmt(results.trackerSync.tracker.rps)} req/s` : results.trackerSync.reason}`,
  );

  [...clients, ...pingClients, owner].forEach((c) => c.close());
  await stopServer(ping);
  await stopServer(t1);
  await stopServer(t2);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The same mix on tracker 1 while it has changes to pass on to tracker 2 (a writer creates groups on tracker 1 the
 * whole time). Measured only if tracker 2 is seen to receive a change made on tracker 1.
 */
async function measureWhileSyncing(cfg, ports, clients, owner, t1, t2, mix, measure) {
  const n = Math.min(...cfg.loadConns);
  await owner.ok('create_group syncprobe-1');
  const probe = await LineClient.connect('127.0.0.1', ports[1]);
  let seen = false;
  let why = 'tracker 2 does not know users created on tracker 1';
  const deadline = Date.now() + 5_000;
  while (!seen && Date.now() < deadline) {
    const login = await probe.request(`login syncprobe ${PASSWORD}`);
    if (login.ok || login.code === 'ALREADY_LOGGED_IN') {
      const groups = await probe.request('list_groups');
      seen = groups.ok && groups.lines.some((l) => l.startsWith('syncprobe-1 '));
      why = 'tracker 2 never listed a group created on tracker 1';
    }
    if (!seen) await sleep(250);
  }
  if (!seen) {
    probe.close();
    const src = existsSync(join(root, 'apps/tracker/src/sync'))
      ? 'apps/tracker/src/sync exists'
      : 'no apps/tracker/src/sync in this tree';
    return { measured: false, reason: `not measured: tracker sync is not there yet (${why} within 5 s; ${src})` };
  }
  let writing = true;
  let written = 0;
  const writer = (async () => {
    while (writing) {
      await owner.ok(`create_group syncload-${written}`);
      written++;
    }
  })();
  resetPeakRss(t2.child.pid);
  const cpu2 = cpuSeconds(t2.child.pid);
  const r = await measure(t1, clients.slice(0, n), mix);
  writing = false;
  await writer;
  const caughtUpBy = Date.now() + 10_000;
  let caughtUp = false;
  while (!caughtUp && Date.now() < caughtUpBy) {
    const groups = await probe.request('list_groups');
    caughtUp = groups.ok && groups.lines.some((l) => l.startsWith(`syncload-${written - 1} `));
    if (!caughtUp) await sleep(200);
  }
  probe.close();
  return {
    measured: true,
    connections: n,
    tracker: r,
    groupsWritten: written,
    tracker2CpuSeconds: cpuSeconds(t2.child.pid) - cpu2,
    tracker2PeakRssMB: mb(peakRss(t2.child.pid)),
    tracker2CaughtUp: caughtUp,
  };
}

function markdown(results) {
  const out = [];
  if (!results.tracker) return out;
  out.push(
    `## Tracker load (${results.config.loadSeconds} s closed loop per row, one request outstanding per connection)`,
    '',
  );
  out.push('Mix: list_groups, list_files, download_file metadata (64 MiB files, 128 chunks) in turn.', '');
  out.push(
    '| server | connections | req/s | p50 ms | p99 ms | max ms | errors | server CPU s | server peak RSS MB | of PING/PONG |',
  );
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  const row = (name, r, of) =>
    `| ${name} | ${r.connections} | ${fmt(r.rps)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.maxMs)} | ` +
    `${r.errReplies + r.failures + r.timeouts} | ${r.serverCpuSeconds.toFixed(2)} | ${r.serverPeakRssMB} | ${of} |`;
  for (const t of results.tracker) {
    out.push(row('bare PING/PONG (node)', t.ping, ''));
    out.push(row('tracker, mix', t.tracker, pctOf(t.ofPing)));
  }
  const s = results.trackerSync;
  if (s?.measured) {
    out.push(
      row(
        `tracker, mix, while syncing to tracker 2 (a writer created ${s.groupsWritten} groups meanwhile; ` +
          `tracker 2 ${s.tracker2CaughtUp ? 'had them all within 10 s' : 'had NOT caught up 10 s later'}, ` +
          `CPU ${s.tracker2CpuSeconds.toFixed(2)} s, peak RSS ${s.tracker2PeakRssMB} MB)`,
        s.tracker,
        pctOf(s.tracker.rps / results.tracker.find((t) => t.connections === s.connections).tracker.rps) +
          ' of the row without sync',
      ),
    );
  } else if (s) {
    out.push(
      `| tracker, mix, while syncing to tracker 2 | ${Math.min(...results.config.loadConns)} | ${s.reason} ||||||||`,
    );
  }
  out.push('');
  return out;
}

function targets(results) {
  const t = [];
  for (const r of results.tracker ?? []) {
    const errors = r.tracker.errReplies + r.tracker.failures + r.tracker.timeouts;
    if (r.connections === Math.min(...results.config.loadConns)) {
      t.push([`tracker ≥ 25% of PING/PONG, ${r.connections} connections`, pctOf(r.ofPing), r.ofPing >= 0.25]);
      t.push([`tracker p99 < 20 ms, ${r.connections} connections`, `${fmt(r.tracker.p99Ms)} ms`, r.tracker.p99Ms < 20]);
    } else {
      t.push([`${r.connections} connections held without errors`, `${errors} errors`, errors === 0]);
    }
  }
  if (results.trackerSync)
    t.push([
      'tracker while syncing',
      results.trackerSync.measured ? `${fmt(results.trackerSync.tracker.rps)} req/s` : 'not measured',
      results.trackerSync.measured ? true : undefined,
    ]);
  return t;
}

module.exports = { name: 'tracker', config, run, markdown, targets };
