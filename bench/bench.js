#!/usr/bin/env node
// `npm run bench`: throughput, hashing, tracker load and scale, each beside a bare reference measured in the same
// run, on 127.0.0.1 only. Prints Markdown tables and writes bench/results/bench.{json,md} and
// bench/results/throughput.svg. Every child process and temp folder is removed at the end, also on failure.
//
// Sizes (environment; BENCH_QUICK=1 shrinks them all for a smoke run of about a minute):
//   BENCH_FILE_MB=1024            the random file downloaded and uploaded
//   BENCH_SEEDERS=1,2,4           seeder counts for the download rows
//   BENCH_LOAD_CONNS=50,500       concurrent logged-in tracker connections
//   BENCH_LOAD_SECONDS=10         length of each load window
//   BENCH_SCALE_USERS=2000        users created through create_user (scrypt: about 40 a second on 2 cores)
//   BENCH_SCALE_GROUPS=10000      groups created through create_group
//   BENCH_SCALE_FILES=10000       files in one group, for list_files
//   BENCH_SCALE_CHUNKS=200000     chunk hashes of one file, for download_file
//   BENCH_SECTIONS=download,upload,tracker,scale
//   BENCH_CPU_PROF=<dir>          run the clients and trackers with --cpu-prof into <dir>
//   BENCH_RESULTS=<dir>           where results go (default bench/results)
const { spawn, spawnSync } = require('node:child_process');
const { createHash, randomBytes } = require('node:crypto');
const { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } = require('node:fs');
const { tmpdir, cpus, totalmem } = require('node:os');
const { join } = require('node:path');
const { ensureBuild } = require('../scripts/ensure-build');
const {
  CLIENT,
  Proc,
  TRACKER,
  cpuSeconds,
  currentRss,
  freePort,
  peakRss,
  randomFile,
  resetPeakRss,
  root,
} = require('../scripts/lib/procs');
const { LineClient, pipeline } = require('./lib/line-client');
const { closedLoop, sequentialLatency } = require('./lib/load');
const { throughputChart } = require('./lib/svg');

const QUICK = process.env.BENCH_QUICK === '1';
const num = (name, full, quick) => Number(process.env[name] ?? (QUICK ? quick : full));
const list = (name, full, quick) =>
  (process.env[name] ?? (QUICK ? quick : full))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const CFG = {
  fileMb: num('BENCH_FILE_MB', 1024, 64),
  seeders: list('BENCH_SEEDERS', '1,2,4', '1,2,4').map(Number),
  loadConns: list('BENCH_LOAD_CONNS', '50,500', '20,100').map(Number),
  loadSeconds: num('BENCH_LOAD_SECONDS', 10, 2),
  loadFiles: 20,
  scaleUsers: num('BENCH_SCALE_USERS', 2000, 40),
  scaleGroups: num('BENCH_SCALE_GROUPS', 10000, 500),
  scaleFiles: num('BENCH_SCALE_FILES', 10000, 500),
  scaleChunks: num('BENCH_SCALE_CHUNKS', 200000, 20000),
  sections: new Set(list('BENCH_SECTIONS', 'download,upload,tracker,scale', 'download,upload,tracker,scale')),
  cpuProf: process.env.BENCH_CPU_PROF,
  resultsDir: process.env.BENCH_RESULTS ?? join(root, 'bench', 'results'),
};

const MB = 1e6;
const MiB = 1024 * 1024;
const CHUNK = 512 * 1024;
const PASSWORD = 'bench-pw';
const t0 = Date.now();
const say = (text) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${text}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hrSeconds = (from) => Number(process.hrtime.bigint() - from) / 1e9;
const mb = (bytes) => (bytes === undefined ? undefined : +(bytes / MiB).toFixed(1));

/** Every child process started, so that they all die at the end whatever happens. */
const children = new Set();
let workDir;

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function nodeArgs(label) {
  if (!CFG.cpuProf) return [];
  mkdirSync(CFG.cpuProf, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${CFG.cpuProf}`, `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`];
}

function startProc(name, script, args, cwd, label = name) {
  const p = new Proc(name, process.execPath, [...nodeArgs(label), script, ...args], cwd);
  track(p.child);
  return p;
}

/** Stops a client shell politely (so a --cpu-prof profile gets written), then for good. */
async function stopProc(p, timeoutMs = 10_000) {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.stdin.end();
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  await p.exited;
  clearTimeout(t);
}

async function stopServer(p, timeoutMs = 5_000) {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGINT');
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  await p.exited;
  clearTimeout(t);
}

async function startTracker(dir, info, n, label) {
  const t = startProc(
    `tracker ${n}`,
    TRACKER,
    [info, String(n), '--data-dir', join(dir, `tracker-${n}-data`)],
    dir,
    label,
  );
  await t.waitFor(/listening on \S+/, 30_000);
  return t;
}

async function startClient(dir, name, info, label = name) {
  const cwd = join(dir, name);
  mkdirSync(cwd, { recursive: true });
  const port = await freePort();
  const p = startProc(name, CLIENT, [`127.0.0.1:${port}`, info, '--data-dir', join(cwd, '.state')], cwd, label);
  p.port = port;
  p.cwd = cwd;
  return p;
}

async function connectAll(port, n, batch = 100) {
  const out = [];
  for (let i = 0; i < n; i += batch) {
    out.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(batch, n - i) }, () => LineClient.connect('127.0.0.1', port)),
      )),
    );
  }
  return out;
}

/** Runs `work(item)` for every item with at most `width` at once. */
async function parallel(items, width, work) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i], i);
      }
    }),
  );
  return results;
}

/** Writes dirty pages out (the random file, the last copy), so that no measurement pays for an earlier one. */
const settleDisk = () => spawnSync('sync');

const fakeSha1 = (seed) => createHash('sha1').update(String(seed)).digest('hex');

function sha1sumOf(path) {
  const from = process.hrtime.bigint();
  const r = spawnSync('sha1sum', [path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sha1sum failed: ${r.stderr}`);
  return { hash: r.stdout.split(' ')[0], seconds: hrSeconds(from) };
}

function runNodeScript(script, args) {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, [join(__dirname, 'lib', script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${script}: ${err || code}`)),
    );
  });
}

async function waitForFile(path, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path) || readFileSync(path, 'utf8') === '') {
    if (Date.now() > deadline) throw new Error(`${path} did not appear`);
    await sleep(10);
  }
  return readFileSync(path, 'utf8');
}

// ---------------------------------------------------------------------------------------------------------------
// 1 + 2: download throughput against the ceiling, upload hashing against sha1sum and bare Node

async function transferSections(results) {
  const dir = join(workDir, 'transfer');
  mkdirSync(dir);
  const size = CFG.fileMb * MiB;
  const file = join(dir, 'big.bin');
  say(`writing a ${CFG.fileMb} MiB random file`);
  randomFile(file, CFG.fileMb);
  settleDisk();

  say('references: sha1sum, bare Node chunk hashing, the plain-Node TCP ceiling');
  const sum = sha1sumOf(file);
  const bare = await runNodeScript('hash-rate.js', [file]);
  const bareBoth = await runNodeScript('hash-rate.js', [file, 'both']);
  settleDisk();
  const ceiling = await runCeiling(dir, file, size);
  settleDisk();
  results.references = {
    sha1sum: { seconds: sum.seconds, MBps: size / MB / sum.seconds },
    nodeChunkHash: { seconds: bare.seconds, MBps: size / MB / bare.seconds },
    nodeChunkAndFileHash: { seconds: bareBoth.seconds, MBps: size / MB / bareBoth.seconds },
    ceiling: { seconds: ceiling.seconds, MBps: size / MB / ceiling.seconds, cpuSeconds: ceiling.cpuSeconds },
  };
  say(
    `  sha1sum ${fmt(size / MB / sum.seconds)} MB/s; node chunk hashing ${fmt(size / MB / bare.seconds)} MB/s; ` +
      `ceiling ${fmt(size / MB / ceiling.seconds)} MB/s`,
  );

  const port = await freePort();
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, `127.0.0.1:${port}\n`);
  const tracker = await startTracker(dir, info, 1, 'transfer-tracker');
  const maxSeeders = Math.max(...CFG.seeders);
  const seederNames = Array.from({ length: maxSeeders }, (_, i) => `seed${i + 1}`);
  await setupGroup(port, 'bench', [...seederNames, 'carol']);

  // 2. upload_file: the first seeder's upload is the measured one
  const seeders = [];
  for (const [i, name] of seederNames.entries()) {
    const p = await startClient(dir, name, info);
    seeders.push(p);
    await p.run(`login ${name} ${PASSWORD}`, /logged in as \S+\n/);
    if (i === 0) results.upload = await measureUpload(p, file, size, results.references);
    else await p.run(`upload_file bench ${file}`, /shared big\.bin.*\n|error:.*\n/);
  }
  if (results.upload) {
    const u = results.upload;
    say(
      `  upload_file: ${fmt(u.MBps)} MB/s (${u.seconds.toFixed(2)} s, CPU ${u.cpuSeconds.toFixed(2)} s, ` +
        `peak RSS ${u.peakRssMB} MB); chunk server probe p99 ${fmt(u.probe.p99Ms)} ms, max ${fmt(u.probe.maxMs)} ms`,
    );
  }

  // 1. downloads from 1, 2, 4 seeders
  results.downloads = [];
  if (CFG.sections.has('download')) {
    // one download from every seeder, not measured: the seeders' chunk-serving paths get warm (JIT, buffers), so
    // that the rows below compare seeder counts and not how many seeders serve for the first time
    say('  warm-up download (not measured)');
    await measureDownload(dir, info, seeders, size, sum.hash, results.references.ceiling, 'warmup');
    let online = seeders.length;
    for (const n of CFG.seeders) {
      // exactly the first n seeders online: log the others out, log back in the ones needed
      for (let i = 0; i < seeders.length; i++) {
        const p = seeders[i];
        if (i >= n && i < online) await p.run('logout', /logged out.*\n|error:.*\n/);
      }
      for (let i = online; i < n; i++) {
        await seeders[i].run(`login seed${i + 1} ${PASSWORD}`, /seeding 1 file again\n/);
      }
      online = n;
      const row = await measureDownload(dir, info, seeders.slice(0, n), size, sum.hash, results.references.ceiling);
      results.downloads.push(row);
      say(
        `  ${n} seeder${n === 1 ? '' : 's'}: ${fmt(row.MBps)} MB/s (${row.seconds.toFixed(2)} s, ` +
          `${(100 * row.ofCeiling).toFixed(0)}% of the ceiling), CPU ${row.cpuSeconds.toFixed(2)} s, ` +
          `RSS ${row.downloaderPeakRssMB} MB, seeders ${row.seederPeakRssMB.join('/')} MB, hash ${row.hashOk ? 'ok' : 'BAD'}`,
      );
    }
  }
  await Promise.all(seeders.map((p) => stopProc(p)));
  await stopServer(tracker);
  rmSync(dir, { recursive: true, force: true });
}

/** create_user for everyone; the first creates `group`, the others join and are accepted. */
async function setupGroup(port, group, users) {
  const conns = await connectAll(port, users.length);
  await parallel(users, 8, async (u, i) => {
    await conns[i].ok(`create_user ${u} ${PASSWORD}`);
    await conns[i].ok(`login ${u} ${PASSWORD}`);
  });
  await conns[0].ok(`create_group ${group}`);
  await Promise.all(conns.slice(1).map((c) => c.ok(`join_group ${group}`)));
  await pipeline(
    conns[0],
    users.slice(1).map((u) => `accept_request ${group} ${u}`),
  );
  conns.forEach((c) => c.close());
  await sleep(100); // let the tracker see the sessions end
}

async function runCeiling(dir, file, size) {
  const portFile = join(dir, 'ceiling.port');
  const sender = track(
    spawn(process.execPath, [join(__dirname, 'lib', 'ceiling.js'), 'send', file, portFile], { stdio: 'ignore' }),
  );
  try {
    const port = await waitForFile(portFile);
    const dest = join(dir, 'ceiling.out');
    const r = await runNodeScript('ceiling.js', ['receive', port, dest, String(size)]);
    rmSync(dest, { force: true });
    return r;
  } finally {
    sender.kill('SIGKILL');
  }
}

/**
 * Times `upload_file` of the first seeder, and meanwhile checks that its process stays responsive: a probe sends
 * `GET_CHUNK 0 /nonexistent` to its chunk server every 20 ms and times the `ERR` answer.
 */
async function measureUpload(p, file, size, refs) {
  settleDisk();
  const pid = p.child.pid;
  resetPeakRss(pid);
  const cpu0 = cpuSeconds(pid);
  const probe = await LineClient.connect('127.0.0.1', p.port);
  const probeMs = [];
  let uploading = true;
  const probing = (async () => {
    while (uploading) {
      const from = process.hrtime.bigint();
      await probe.request('GET_CHUNK 0 /nonexistent/probe');
      probeMs.push(Number(process.hrtime.bigint() - from) / 1e6);
      await sleep(20);
    }
  })();
  const from = process.hrtime.bigint();
  const answer = await p.run(`upload_file bench ${file}`, /shared big\.bin.*\n|error:.*\n/);
  const seconds = hrSeconds(from);
  uploading = false;
  await probing;
  probe.close();
  if (answer.includes('error:')) throw new Error(`upload failed: ${answer}`);
  probeMs.sort((a, b) => a - b);
  const pct = (q) => probeMs[Math.min(probeMs.length - 1, Math.floor(q * probeMs.length))];
  const MBps = size / MB / seconds;
  return {
    seconds,
    MBps,
    cpuSeconds: cpuSeconds(pid) - cpu0,
    peakRssMB: mb(peakRss(pid)),
    vsSha1sum: MBps / refs.sha1sum.MBps,
    vsNodeChunkHash: MBps / refs.nodeChunkHash.MBps,
    vsNodeChunkAndFileHash: MBps / refs.nodeChunkAndFileHash.MBps,
    probe: { count: probeMs.length, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: probeMs[probeMs.length - 1] },
  };
}

async function measureDownload(dir, info, seeders, size, expectedHash, ceiling, tag = '') {
  const n = seeders.length;
  const name = `carol${n}${tag}`;
  const cwd = join(dir, name);
  mkdirSync(cwd);
  settleDisk();
  const port = await freePort();
  const p = startProc(
    name,
    CLIENT,
    [`127.0.0.1:${port}`, info, '--data-dir', join(cwd, '.state')],
    cwd,
    `download-${n}`,
  );
  for (const s of seeders) resetPeakRss(s.child.pid);
  const seederCpu0 = seeders.map((s) => cpuSeconds(s.child.pid));
  await p.run(`login carol ${PASSWORD}`, /logged in as \S+\n/);
  const pid = p.child.pid;
  const cpu0 = cpuSeconds(pid);
  const from = process.hrtime.bigint();
  p.mark = p.out.length;
  p.child.stdin.write('download_file bench big.bin copy.bin\n');
  const done = await p.waitFor(/downloaded .*\n|error:.*\n/, 600_000);
  const seconds = hrSeconds(from);
  const cpu = cpuSeconds(pid) - cpu0;
  const rss = peakRss(pid);
  const seederRss = seeders.map((s) => peakRss(s.child.pid));
  const seederCpu = seeders.map((s, i) => cpuSeconds(s.child.pid) - seederCpu0[i]);
  const summary = /downloaded .*/.exec(done)?.[0];
  // the client now announces itself as a seeder; let that finish before ending its input (a client whose input
  // ends while that request is in flight may reconnect to the tracker and never exit)
  for (let i = 0; summary && i < 100; i++) {
    const listing = await p.run('list_files bench', /big\.bin .*\n|error:.*\n/);
    if (listing.includes(`seeders=${n + 1}`)) break;
    await sleep(100);
  }
  await stopProc(p, 30_000);
  if (!summary) throw new Error(`download from ${n} seeders failed:\n${p.out}`);
  const copy = join(cwd, 'copy.bin');
  const got = sha1sumOf(copy).hash;
  rmSync(cwd, { recursive: true, force: true });
  const MBps = size / MB / seconds;
  return {
    seeders: n,
    seconds,
    MBps,
    ofCeiling: MBps / ceiling.MBps,
    cpuSeconds: cpu,
    seederCpuSeconds: seederCpu.map((c) => +c.toFixed(2)),
    downloaderPeakRssMB: mb(rss),
    seederPeakRssMB: seederRss.map(mb),
    hashOk: got === expectedHash,
    summary,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 3: tracker load against a bare PING/PONG server

async function trackerSection(results) {
  const dir = join(workDir, 'tracker');
  mkdirSync(dir);
  const ports = [await freePort(), await freePort()];
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, ports.map((p) => `127.0.0.1:${p}\n`).join(''));
  const t1 = await startTracker(dir, info, 1, 'load-tracker1');
  const t2 = await startTracker(dir, info, 2, 'load-tracker2');
  const maxConns = Math.max(...CFG.loadConns);
  say(`tracker load: creating and logging in ${maxConns} users (scrypt), a group with ${CFG.loadFiles} files`);
  const owner = await LineClient.connect('127.0.0.1', ports[0]);
  await owner.ok(`create_user loadowner ${PASSWORD}`);
  await owner.ok(`create_user syncprobe ${PASSWORD}`);
  await owner.ok(`login loadowner ${PASSWORD}`);
  await owner.ok('create_group load');
  const fileSize = 64 * MiB;
  const chunks = Array.from({ length: fileSize / CHUNK }, (_, i) => fakeSha1(`chunk${i}`));
  for (let f = 0; f < CFG.loadFiles; f++) {
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
  const ping = startProc('ping', join(__dirname, 'lib', 'ping-server.js'), [portFile], dir);
  const pingClients = await connectAll(Number(await waitForFile(portFile)), maxConns);

  const mix = (conn, n) => {
    switch ((conn + n) % 3) {
      case 0:
        return 'list_groups';
      case 1:
        return 'list_files load';
      default:
        return `download_file load file${(conn * 7 + n) % CFG.loadFiles}.bin`;
    }
  };
  const measure = async (proc, conns, request) => {
    resetPeakRss(proc.child.pid);
    const cpu0 = cpuSeconds(proc.child.pid);
    const r = await closedLoop(conns, request, { seconds: CFG.loadSeconds });
    r.serverCpuSeconds = cpuSeconds(proc.child.pid) - cpu0;
    r.serverPeakRssMB = mb(peakRss(proc.child.pid));
    return r;
  };
  results.tracker = [];
  for (const n of CFG.loadConns) {
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
  results.trackerSync = await measureWhileSyncing(ports, clients, owner, t1, t2, mix, measure);
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
async function measureWhileSyncing(ports, clients, owner, t1, t2, mix, measure) {
  const n = Math.min(...CFG.loadConns);
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

// ---------------------------------------------------------------------------------------------------------------
// 4: scale

async function scaleSection(results) {
  const dir = join(workDir, 'scale');
  mkdirSync(dir);
  const port = await freePort();
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, `127.0.0.1:${port}\n`);
  const t = await startTracker(dir, info, 1, 'scale-tracker');
  const pid = t.child.pid;
  const out = { rssStartMB: mb(currentRss(pid)) };
  results.scale = out;

  say(`scale: ${CFG.scaleUsers} users through create_user`);
  const creators = await connectAll(port, 4);
  let from = process.hrtime.bigint();
  const names = Array.from({ length: CFG.scaleUsers }, (_, i) => `user${i}`);
  await parallel(names, 4, (u, i) => creators[i % 4].ok(`create_user ${u} ${PASSWORD}`));
  out.users = { count: CFG.scaleUsers, seconds: hrSeconds(from), rssMB: mb(currentRss(pid)) };
  creators.forEach((c) => c.close());

  say(`scale: ${CFG.scaleGroups} groups through create_group`);
  const owner = await LineClient.connect('127.0.0.1', port);
  await owner.ok(`login user0 ${PASSWORD}`);
  from = process.hrtime.bigint();
  const groupNames = Array.from({ length: CFG.scaleGroups }, (_, i) => `group${i}`);
  const created = await pipeline(
    owner,
    groupNames.map((g) => `create_group ${g}`),
  );
  if (created.some((r) => !r.ok)) throw new Error('create_group failed');
  out.groups = { count: CFG.scaleGroups, seconds: hrSeconds(from), rssMB: mb(currentRss(pid)) };
  out.listGroups = await sequentialLatency(owner, 'list_groups', 10);
  delete out.listGroups.last;

  say(`scale: ${CFG.scaleFiles} files in one group through upload_file`);
  from = process.hrtime.bigint();
  const uploads = Array.from(
    { length: CFG.scaleFiles },
    (_, i) =>
      `upload_file group0 /bench/scale/file-${i}.bin 1000 ${fakeSha1(`f${i}`)} ${fakeSha1(`c${i}`)} 127.0.0.1:9`,
  );
  const shared = await pipeline(owner, uploads);
  if (shared.some((r) => !r.ok)) throw new Error(`upload_file failed: ${shared.find((r) => !r.ok).message}`);
  out.files = { count: CFG.scaleFiles, seconds: hrSeconds(from), rssMB: mb(currentRss(pid)) };
  out.listFiles = await sequentialLatency(owner, 'list_files group0', 20);
  if (out.listFiles.last.count !== CFG.scaleFiles) throw new Error(`list_files gave ${out.listFiles.last.count} files`);
  delete out.listFiles.last;

  say(`scale: one file of ${CFG.scaleChunks} chunks`);
  const hugeSize = CFG.scaleChunks * CHUNK;
  const hashes = Array.from({ length: CFG.scaleChunks }, (_, i) => fakeSha1(`h${i}`));
  const lines = [];
  for (let i = 0; i < hashes.length; i += 1000) lines.push(hashes.slice(i, i + 1000).join(','));
  from = process.hrtime.bigint();
  await owner.ok(
    `upload_file group1 /bench/scale/huge.bin ${hugeSize} ${fakeSha1('huge')} @${lines.length} 127.0.0.1:9`,
    lines,
  );
  out.hugeUpload = { chunks: CFG.scaleChunks, seconds: hrSeconds(from) };
  const meta = await sequentialLatency(owner, 'download_file group1 huge.bin', 10);
  // what a client does with the reply: the protocol library's own parser
  const { parseFileMetadata } = require(join(root, 'dist/apps/client/libs/protocol/src'));
  const parseFrom = process.hrtime.bigint();
  const parsed = parseFileMetadata(meta.last.lines);
  const parseMs = hrSeconds(parseFrom) * 1000;
  if (parsed.chunkHashes.length !== CFG.scaleChunks || parsed.chunkHashes[7] !== hashes[7])
    throw new Error('bad metadata');
  delete meta.last;
  out.metadata = { ...meta, clientParseMs: parseMs };
  out.rssEndMB = mb(currentRss(pid));
  out.peakRssMB = mb(peakRss(pid));
  say(
    `  list_files (${CFG.scaleFiles} files): p50 ${fmt(out.listFiles.p50Ms)} ms; download_file (${CFG.scaleChunks} chunks): ` +
      `p50 ${fmt(out.metadata.p50Ms)} ms + client parse ${fmt(parseMs)} ms; tracker RSS ${out.rssEndMB} MB`,
  );
  owner.close();
  await stopServer(t);
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------------
// report

const fmt = (v) =>
  v === undefined || Number.isNaN(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const pctOf = (r) => `${(100 * r).toFixed(0)}%`;
const check = (ok) => (ok ? 'met' : '**missed**');

function markdown(results) {
  const out = [];
  const m = results.machine;
  out.push(`# p2p-share benchmark (${results.startedAt})`, '');
  out.push(`${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, Node ${m.node}; sizes: ${JSON.stringify(results.config)}`, '');
  const refs = results.references;
  if (refs) {
    out.push(`## Download throughput (${results.config.fileMb} MiB random file, loopback, page cache warm)`, '');
    out.push(
      '| run | wall s | MB/s | of ceiling | downloader CPU s | seeders CPU s | downloader peak RSS MB | seeders peak RSS MB | SHA-1 |',
    );
    out.push('|---|---|---|---|---|---|---|---|---|');
    out.push(
      `| ceiling: plain Node, 1 TCP stream, SHA-1 per 512 KiB chunk, positional writes | ${refs.ceiling.seconds.toFixed(2)} | ` +
        `${fmt(refs.ceiling.MBps)} | 100% | ${refs.ceiling.cpuSeconds.toFixed(2)} (receiver) | | | | |`,
    );
    out.push(`| sha1sum of the file | ${refs.sha1sum.seconds.toFixed(2)} | ${fmt(refs.sha1sum.MBps)} | | | | | | |`);
    for (const d of results.downloads ?? []) {
      out.push(
        `| download_file from ${d.seeders} seeder${d.seeders === 1 ? '' : 's'} | ${d.seconds.toFixed(2)} | ${fmt(d.MBps)} | ` +
          `${pctOf(d.ofCeiling)} | ${d.cpuSeconds.toFixed(2)} | ${d.seederCpuSeconds.join(', ')} | ${d.downloaderPeakRssMB} | ${d.seederPeakRssMB.join(', ')} | ` +
          `${d.hashOk ? 'match' : '**MISMATCH**'} |`,
      );
    }
    out.push('');
  }
  if (results.upload) {
    const u = results.upload;
    out.push('## Upload hashing (`upload_file` of the same file)', '');
    out.push('| run | s | MB/s | vs `upload_file` |', '|---|---|---|---|');
    out.push(
      `| upload_file (whole-file + per-chunk SHA-1, tracker round trip) | ${u.seconds.toFixed(2)} | ${fmt(u.MBps)} | |`,
    );
    out.push(
      `| Node bare chunk hashing (1 thread, per-chunk SHA-1 only) | ${refs.nodeChunkHash.seconds.toFixed(2)} | ${fmt(refs.nodeChunkHash.MBps)} | upload_file is ${pctOf(u.vsNodeChunkHash)} of it |`,
    );
    out.push(
      `| Node bare chunk + whole-file hashing (1 thread, the same work as upload_file) | ${refs.nodeChunkAndFileHash.seconds.toFixed(2)} | ${fmt(refs.nodeChunkAndFileHash.MBps)} | upload_file is ${pctOf(u.vsNodeChunkAndFileHash)} of it |`,
    );
    out.push(
      `| sha1sum | ${refs.sha1sum.seconds.toFixed(2)} | ${fmt(refs.sha1sum.MBps)} | upload_file is ${pctOf(u.vsSha1sum)} of it |`,
    );
    out.push('');
    out.push(
      `Uploader CPU ${u.cpuSeconds.toFixed(2)} s, peak RSS ${u.peakRssMB} MB. Responsiveness while hashing: ${u.probe.count} ` +
        `GET_CHUNK probes to the uploading client's chunk server, p50 ${fmt(u.probe.p50Ms)} ms, p99 ${fmt(u.probe.p99Ms)} ms, ` +
        `max ${fmt(u.probe.maxMs)} ms.`,
      '',
    );
  }
  if (results.tracker) {
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
  }
  if (results.scale) {
    const s = results.scale;
    out.push('## Scale (one tracker, populated through the wire)', '');
    out.push('| measure | value |', '|---|---|');
    out.push(`| tracker RSS at start | ${s.rssStartMB} MB |`);
    out.push(
      `| ${s.users.count} users (create_user, scrypt) | ${s.users.seconds.toFixed(1)} s; RSS ${s.users.rssMB} MB |`,
    );
    out.push(
      `| ${s.groups.count} groups (create_group) | ${s.groups.seconds.toFixed(1)} s; RSS ${s.groups.rssMB} MB |`,
    );
    out.push(
      `| list_groups with ${s.groups.count} groups | p50 ${fmt(s.listGroups.p50Ms)} ms, max ${fmt(s.listGroups.maxMs)} ms, ${(s.listGroups.bytes / 1024).toFixed(0)} KB |`,
    );
    out.push(
      `| ${s.files.count} files in one group (upload_file) | ${s.files.seconds.toFixed(1)} s; RSS ${s.files.rssMB} MB |`,
    );
    out.push(
      `| list_files on ${s.files.count} files | p50 ${fmt(s.listFiles.p50Ms)} ms, max ${fmt(s.listFiles.maxMs)} ms, ${(s.listFiles.bytes / 1024).toFixed(0)} KB |`,
    );
    out.push(
      `| upload_file of ${s.hugeUpload.chunks} chunk hashes (@N lines) | ${(s.hugeUpload.seconds * 1000).toFixed(0)} ms |`,
    );
    out.push(
      `| download_file metadata, ${s.hugeUpload.chunks} chunks | p50 ${fmt(s.metadata.p50Ms)} ms, max ${fmt(s.metadata.maxMs)} ms, ` +
        `${(s.metadata.bytes / MiB).toFixed(1)} MiB; client parse ${fmt(s.metadata.clientParseMs)} ms |`,
    );
    out.push(`| tracker RSS at end / peak | ${s.rssEndMB} MB / ${s.peakRssMB} MB |`);
    out.push('');
  }
  out.push('## Targets', '');
  out.push('| target | result | |', '|---|---|---|');
  for (const [what, value, ok] of targets(results))
    out.push(`| ${what} | ${value} | ${ok === undefined ? 'not measured' : check(ok)} |`);
  if (results.errors.length) out.push('', '## Errors', '', ...results.errors.map((e) => `- ${e}`));
  return out.join('\n') + '\n';
}

function targets(results) {
  const t = [];
  const d = (n) => results.downloads?.find((r) => r.seeders === n);
  if (d(2)) t.push(['download from 2 seeders ≥ 70% of the ceiling', pctOf(d(2).ofCeiling), d(2).ofCeiling >= 0.7]);
  if (d(2) && d(4))
    t.push([
      'from 4 seeders no slower than from 2',
      `${fmt(d(4).MBps)} vs ${fmt(d(2).MBps)} MB/s`,
      d(4).MBps >= d(2).MBps * 0.97,
    ]);
  const all = results.downloads ?? [];
  if (all.length) {
    const rss = Math.max(...all.map((r) => r.downloaderPeakRssMB));
    const seedRss = Math.max(...all.flatMap((r) => r.seederPeakRssMB));
    t.push([`downloader peak RSS < 150 MB (${results.config.fileMb} MiB)`, `${rss} MB`, rss < 150]);
    t.push(['seeders < 120 MB each', `${seedRss} MB`, seedRss < 120]);
    t.push([
      'whole-file SHA-1 of every download',
      all.every((r) => r.hashOk) ? 'match' : 'MISMATCH',
      all.every((r) => r.hashOk),
    ]);
  }
  const u = results.upload;
  if (u) {
    t.push(['upload_file ≥ 90% of bare Node chunk hashing', pctOf(u.vsNodeChunkHash), u.vsNodeChunkHash >= 0.9]);
    t.push(['upload_file well ahead of sha1sum', `${pctOf(u.vsSha1sum)} of sha1sum`, u.vsSha1sum >= 1.1]);
    t.push(['shell responsive while hashing (probe p99 < 20 ms)', `${fmt(u.probe.p99Ms)} ms`, u.probe.p99Ms < 20]);
  }
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
  const s = results.scale;
  if (s?.listFiles)
    t.push([`list_files on ${s.files.count} files < 200 ms`, `${fmt(s.listFiles.p50Ms)} ms`, s.listFiles.p50Ms < 200]);
  if (s?.metadata)
    t.push([`${s.hugeUpload.chunks}-chunk metadata < 200 ms`, `${fmt(s.metadata.p50Ms)} ms`, s.metadata.p50Ms < 200]);
  return t;
}

function writeResults(results) {
  mkdirSync(CFG.resultsDir, { recursive: true });
  const md = markdown(results);
  writeFileSync(join(CFG.resultsDir, 'bench.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(CFG.resultsDir, 'bench.md'), md);
  if (results.downloads?.length) {
    writeFileSync(
      join(CFG.resultsDir, 'throughput.svg'),
      throughputChart({
        title: `Download of ${results.config.fileMb} MiB on loopback (${results.startedAt.slice(0, 10)})`,
        bars: results.downloads.map((d) => ({
          label: `${d.seeders} seeder${d.seeders === 1 ? '' : 's'}`,
          value: d.MBps,
        })),
        ceiling: results.references.ceiling.MBps,
        ceilingLabel: 'plain-Node ceiling',
      }),
    );
  }
  process.stdout.write('\n' + md);
  say(`results in ${CFG.resultsDir}`);
}

async function cleanup() {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(
    [...children].map(
      (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r))),
    ),
  );
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function main() {
  ensureBuild();
  workDir = mkdtempSync(join(process.env.BENCH_TMP ?? tmpdir(), 'p2p-bench-'));
  const results = {
    startedAt: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    config: { ...CFG, sections: [...CFG.sections] },
    errors: [],
  };
  delete results.config.resultsDir;
  const sections = [
    ['download', 'upload'].some((s) => CFG.sections.has(s)) && ['transfer', transferSections],
    CFG.sections.has('tracker') && ['tracker', trackerSection],
    CFG.sections.has('scale') && ['scale', scaleSection],
  ].filter(Boolean);
  for (const [name, run] of sections) {
    try {
      await run(results);
    } catch (err) {
      results.errors.push(`${name}: ${err.message.split('\n')[0]}`);
      say(`${name} failed: ${err.stack}`);
      for (const child of children) child.kill('SIGKILL');
    }
  }
  results.totalSeconds = (Date.now() - t0) / 1000;
  writeResults(results);
  process.exitCode = results.errors.length ? 1 : 0;
}

process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => cleanup().then(() => process.exit(143)));
main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${err.stack}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
