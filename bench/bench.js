#!/usr/bin/env node
// `npm run bench`: throughput, hashing, tracker load and scale, each beside a bare reference measured in the same
// run, on 127.0.0.1 only. Prints Markdown tables and writes bench/results/bench.{json,md} and
// bench/results/throughput.svg. Every child process and temp folder is removed at the end, also on failure.
//
// Sizes (environment; BENCH_QUICK=1 shrinks them all for a smoke run of about a minute):
//   BENCH_FILE_MB=1024            the random file downloaded and uploaded
//   BENCH_SEEDERS=1,2,4           seeder counts for the download rows
//   BENCH_ROUNDS=4                rounds of download rows, interleaved (1,2,4,4,2,1,...) with the ceilings and sha1sum
//                                 measured in every round; the tables report medians (quick: 1)
//   BENCH_LOAD_CONNS=50,500       concurrent logged-in tracker connections
//   BENCH_LOAD_SECONDS=10         length of each load window
//   BENCH_SCALE_USERS=100000      users of the scale tracker, written by bench/lib/tracker-fixture.js through the
//                                 tracker's own compiled code, with one scrypt hash reused for every user
//   BENCH_SCALE_GROUPS=10000      groups of the scale tracker (fixture, like the users)
//   BENCH_SCALE_WIRE_USERS=100    more users created through create_user on the wire (scrypt: about 60 a second)
//   BENCH_CATCHUP_SECONDS=300     bound on a second, empty tracker catching up from the scale tracker
//   BENCH_SCALE_FILES=10000       files in one group, for list_files
//   BENCH_SCALE_CHUNKS=200000     chunk hashes of one file, for download_file
//   BENCH_SECTIONS=download,upload,tracker,scale
//   BENCH_CPU_PROF=<dir>          run the clients and trackers with --cpu-prof into <dir>
//   BENCH_RESULTS=<dir>           where results go (default bench/results)
const { spawn, spawnSync } = require('node:child_process');
const { createHash, randomBytes } = require('node:crypto');
const {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  statSync,
} = require('node:fs');
const { tmpdir, cpus, totalmem } = require('node:os');
const { delimiter, join, relative } = require('node:path');
const { ensureBuild } = require('../scripts/ensure-build');
const {
  CLIENT: BUILT_CLIENT,
  Proc,
  TRACKER: BUILT_TRACKER,
  cpuSeconds,
  currentRss,
  freePort,
  peakRss,
  randomFile,
  resetPeakRss,
  root,
} = require('../scripts/lib/procs');
const { LineClient, pipeline } = require('./lib/line-client');

/** The apps every child runs: a copy of dist/ taken at start (see snapshotDist). */
let TRACKER = BUILT_TRACKER;
let CLIENT = BUILT_CLIENT;
let DIST = join(root, 'dist');
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
  rounds: Math.max(1, num('BENCH_ROUNDS', 4, 1)),
  loadConns: list('BENCH_LOAD_CONNS', '50,500', '20,100').map(Number),
  loadSeconds: num('BENCH_LOAD_SECONDS', 10, 2),
  loadFiles: 20,
  scaleUsers: num('BENCH_SCALE_USERS', 100000, 2000),
  scaleWireUsers: num('BENCH_SCALE_WIRE_USERS', 100, 10),
  catchUpSeconds: num('BENCH_CATCHUP_SECONDS', 300, 60),
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
const median = (values) => {
  const v = [...values].sort((a, b) => a - b);
  return v.length === 0
    ? undefined
    : v.length % 2
      ? v[(v.length - 1) / 2]
      : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
/** Median MB/s (and seconds), min, max and every sample of rounds of one measurement ({ seconds, MBps }). */
const summarize = (samples, extra = {}) => ({
  seconds: median(samples.map((x) => x.seconds)),
  MBps: median(samples.map((x) => x.MBps)),
  minMBps: Math.min(...samples.map((x) => x.MBps)),
  maxMBps: Math.max(...samples.map((x) => x.MBps)),
  roundsMBps: samples.map((x) => +x.MBps.toFixed(0)),
  ...extra,
});

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

/**
 * Every bench connection comes from 127.0.0.1, hundreds at once, some waiting their turn to log in (scrypt) for
 * longer than the pre-login idle timeout: the per-address cap and that timeout are raised for the bench.
 */
const BENCH_TRACKER_FLAGS = ['--max-conns-per-ip', '100000', '--idle-timeout-login', '10m'];

async function startTracker(dir, info, n, label) {
  const t = startProc(
    `tracker ${n}`,
    TRACKER,
    [info, String(n), '--data-dir', join(dir, `tracker-${n}-data`), ...BENCH_TRACKER_FLAGS],
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

/**
 * Copies dist/ into the work dir and runs every tracker and client (and the scale fixture) from the copy: others
 * working in this tree rebuild dist/ (nest build empties it first), which used to kill a long run halfway. The copy
 * resolves its packages through NODE_PATH (this repository's node_modules). Retries while dist/ is being rebuilt.
 */
function snapshotDist() {
  const from = join(root, 'dist');
  const to = join(workDir, 'dist');
  const files = (dir) => {
    const out = [];
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else out.push(join(d, e.name));
      }
    };
    walk(dir);
    return out.sort();
  };
  const listing = (dir) =>
    files(dir)
      .map((f) => `${relative(dir, f)}:${statSync(f).size}`)
      .join('\n');
  const newest = (dir) => Math.max(0, ...files(dir).map((f) => statSync(f).mtimeMs));
  // a build caught halfway leaves modules that require files not written yet
  const complete = (dir) =>
    files(dir)
      .filter((f) => f.endsWith('.js'))
      .every((f) =>
        [...readFileSync(f, 'utf8').matchAll(/require\("(\.{1,2}\/[^"]+)"\)/g)].every(([, spec]) => {
          const p = join(f, '..', spec);
          return existsSync(`${p}.js`) || existsSync(join(p, 'index.js')) || existsSync(p);
        }),
      );
  for (let attempt = 1; ; attempt++) {
    try {
      if (attempt > 1) ensureBuild(); // main() built already
      // no file written in the last 3 s: no build is writing dist/ right now
      const until = Date.now() + 60_000;
      while (Date.now() - newest(from) < 3000 && Date.now() < until) spawnSync('sleep', ['1']);
      const before = listing(from);
      rmSync(to, { recursive: true, force: true });
      cpSync(from, to, { recursive: true });
      const tracker = join(to, relative(from, BUILT_TRACKER));
      const client = join(to, relative(from, BUILT_CLIENT));
      const same = listing(to) === before && listing(from) === before;
      if (existsSync(tracker) && existsSync(client) && same && complete(to)) {
        TRACKER = tracker;
        CLIENT = client;
        DIST = to;
        break;
      }
    } catch (err) {
      if (attempt >= 10) throw err;
    }
    if (attempt >= 10) throw new Error('dist/ kept changing while it was copied');
    spawnSync('sleep', ['2']);
  }
  process.env.NODE_PATH = [join(root, 'node_modules'), process.env.NODE_PATH].filter(Boolean).join(delimiter);
  process.env.BENCH_DIST = DIST;
}

/** Writes dirty pages out (the random file, the last copy), so that no measurement pays for an earlier one. */
const settleDisk = () => spawnSync('sync');

// Every timed transfer (the ceilings and each download) starts from the same memory state, "cold": disk synced, then
// COLD_SETTLE_MS idle. This VM hands memory that stays free for up to two seconds back to its host (virtio-balloon
// free page reporting), and the first write into such memory costs the guest several times the CPU: 1 GiB written
// into a new file took 0.2-0.3 s of system time right after a 1 GiB file was deleted, 0.8-2.4 s after four or five
// idle seconds (bench/lib/write-cost.js measures it in every run). A run can only be "warm" if it finishes before the host takes the memory back, which a 1.2 s ceiling
// mostly does and a 3 s download does not; measured back to back, the ceiling ran warm and the downloads cold. So
// every timed run now waits until freed memory is back with the host, and one more ceiling per round is measured
// warm (right after 1 GiB was freed) and reported beside, not used for the ratios. Not longer than this: the VM
// also pages out page cache left untouched for six seconds (DAMON), which would make the seeders read from disk.
const COLD_SETTLE_MS = 4_000;
/** Unmeasured downloads from every seeder before the timed ones (see where they run). */
const WARMUP_DOWNLOADS = 4;
async function coldSettle() {
  settleDisk();
  await sleep(COLD_SETTLE_MS);
}

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

  say(
    'references: sha1sum, bare Node chunk + whole-file hashing on one thread (bare chunk hashing is measured in ' +
      'every upload round, the plain-Node TCP ceiling in every download round)',
  );
  const sum = sha1sumOf(file);
  const bareBoth = await runNodeScript('hash-rate.js', [file, 'both']);
  settleDisk();
  results.references = {
    sha1sum: { seconds: sum.seconds, MBps: size / MB / sum.seconds },
    nodeChunkAndFileHash: { seconds: bareBoth.seconds, MBps: size / MB / bareBoth.seconds },
  };
  say(
    `  sha1sum ${fmt(size / MB / sum.seconds)} MB/s; chunk + whole-file hashing ${fmt(size / MB / bareBoth.seconds)} MB/s`,
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
      `  upload_file (median of ${u.rounds.length}): ${fmt(u.MBps)} MB/s (${u.seconds.toFixed(2)} s, CPU ` +
        `${u.cpuSeconds.toFixed(2)} s, peak RSS ${u.peakRssMB} MB) = ${pctOf(u.vsNodeChunkHash)} of bare chunk hashing, ` +
        `${pctOf(u.vsNodeHashPair)} of two bare hashers at once; chunk server probe p99 ${fmt(u.probe.p99Ms)} ms, ` +
        `max ${fmt(u.probe.maxMs)} ms; unmeasured warm-up upload of 32 MiB before them ${u.warmupSeconds.toFixed(2)} s`,
    );
  }

  // 1. downloads from 1, 2, 4 seeders, in interleaved rounds (1,2,4,1,2,4,...), each round with its own ceiling,
  // the ceiling doing a download's whole contract, and sha1sum, so that a noisy moment on this shared machine hits one sample of
  // every row rather than all samples of one row; the tables report the medians
  results.downloads = [];
  if (CFG.sections.has('download')) {
    // what the memory a run writes into costs here (see coldSettle): the same writes, warm and cold
    const writeCost = await runNodeScript('write-cost.js', [dir, String(CFG.fileMb), String(COLD_SETTLE_MS)]);
    results.references.writeCost = writeCost;
    say(
      `  writing ${CFG.fileMb} MiB into a new file: warm ${writeCost.warm.seconds.toFixed(2)} s (system ` +
        `${writeCost.warm.systemSeconds.toFixed(2)} s), cold ${writeCost.cold.seconds.toFixed(2)} s (system ` +
        `${writeCost.cold.systemSeconds.toFixed(2)} s)`,
    );
    // downloads from every seeder, not measured, until each has served a few thousand chunks: V8 keeps optimizing a
    // seeder's chunk-serving code over its first ~2,000 chunks (measured with --log-function-events: baseline and
    // optimizing compiles still ran in the second round), so after one warm-up download (a quarter of the file each
    // from 4 seeders) seeders 3 and 4, idle in the 1- and 2-seeder rows, were still compiling in the 4-seeder row and
    // spent 0.1-0.2 s more CPU each; the rows below then compared how warm the seeders were, not their number
    say(`  ${WARMUP_DOWNLOADS} warm-up downloads from all ${seeders.length} seeders (not measured)`);
    for (let i = 0; i < WARMUP_DOWNLOADS; i++)
      await measureDownload(dir, info, seeders, size, sum.hash, undefined, 'warmup');
    const samples = {
      ceiling: [],
      warmCeiling: [],
      fullCeiling: [],
      directCeiling: [],
      sha1sum: [],
      downloads: new Map(CFG.seeders.map((n) => [n, []])),
    };
    let online = seeders.length;
    for (let round = 1; round <= CFG.rounds; round++) {
      say(`  round ${round} of ${CFG.rounds}`);
      const kept = join(dir, 'ceiling.kept');
      const ceiling = await runCeiling(dir, file, size, [], { keep: kept });
      settleDisk();
      const warm = await runCeiling(dir, file, size, [], { warmFrom: kept });
      const full = await runCeiling(dir, file, size, ['--contract']);
      const direct = await runCeiling(dir, file, size, ['--contract', '--direct']);
      settleDisk();
      const s1 = sha1sumOf(file);
      if (s1.hash !== sum.hash) throw new Error('sha1sum of the file changed');
      samples.ceiling.push({ ...ceiling, MBps: size / MB / ceiling.seconds });
      samples.warmCeiling.push({ ...warm, MBps: size / MB / warm.seconds });
      samples.fullCeiling.push({ ...full, MBps: size / MB / full.seconds });
      samples.directCeiling.push({ ...direct, MBps: size / MB / direct.seconds });
      samples.sha1sum.push({ seconds: s1.seconds, MBps: size / MB / s1.seconds });
      say(
        `    ceiling ${fmt(size / MB / ceiling.seconds)} MB/s (warm memory ${fmt(size / MB / warm.seconds)} MB/s; ` +
          `with whole-file SHA-1 and sync to disk ${fmt(size / MB / full.seconds)} MB/s, and writing as ` +
          `download_file does ${fmt(size / MB / direct.seconds)} MB/s); ` +
          `sha1sum ${fmt(size / MB / s1.seconds)} MB/s`,
      );
      // every other round runs the seeder counts in reverse, so that no count always comes first or last
      for (const n of round % 2 === 1 ? CFG.seeders : [...CFG.seeders].reverse()) {
        // exactly the first n seeders online: log the others out, log back in the ones needed
        for (let i = 0; i < seeders.length; i++) {
          const p = seeders[i];
          if (i >= n && i < online) await p.run('logout', /logged out.*\n|error:.*\n/);
        }
        for (let i = online; i < n; i++) {
          await seeders[i].run(`login seed${i + 1} ${PASSWORD}`, /seeding 1 file again\n/);
        }
        online = n;
        const row = await measureDownload(dir, info, seeders.slice(0, n), size, sum.hash, ceiling, `r${round}`);
        samples.downloads.get(n).push(row);
        say(
          `    ${n} seeder${n === 1 ? '' : 's'}: ${fmt(row.MBps)} MB/s (${row.seconds.toFixed(2)} s, ` +
            `${(100 * row.ofCeiling).toFixed(0)}% of this round's ceiling), CPU ${row.cpuSeconds.toFixed(2)} s, ` +
            `RSS ${row.downloaderPeakRssMB} MB, seeders ${row.seederPeakRssMB.join('/')} MB, hash ${row.hashOk ? 'ok' : 'BAD'}`,
        );
      }
    }
    results.references.ceiling = summarize(samples.ceiling, {
      cpuSeconds: median(samples.ceiling.map((c) => c.cpuSeconds)),
    });
    results.references.warmCeiling = summarize(samples.warmCeiling, {
      cpuSeconds: median(samples.warmCeiling.map((c) => c.cpuSeconds)),
    });
    results.references.fullCeiling = summarize(samples.fullCeiling, {
      cpuSeconds: median(samples.fullCeiling.map((c) => c.cpuSeconds)),
    });
    results.references.directCeiling = summarize(samples.directCeiling, {
      cpuSeconds: median(samples.directCeiling.map((c) => c.cpuSeconds)),
    });
    results.references.sha1sumRounds = summarize(samples.sha1sum);
    for (const n of CFG.seeders) {
      const rows = samples.downloads.get(n);
      const m = summarize(rows);
      results.downloads.push({
        seeders: n,
        seconds: m.seconds,
        MBps: m.MBps,
        minMBps: m.minMBps,
        maxMBps: m.maxMBps,
        roundsMBps: m.roundsMBps,
        ofCeiling: m.MBps / results.references.ceiling.MBps,
        ofFullCeiling: m.MBps / results.references.fullCeiling.MBps,
        ofDirectCeiling: m.MBps / results.references.directCeiling.MBps,
        cpuSeconds: median(rows.map((r) => r.cpuSeconds)),
        seederCpuSeconds: rows[0].seederCpuSeconds.map(
          (_, i) => +median(rows.map((r) => r.seederCpuSeconds[i])).toFixed(2),
        ),
        downloaderPeakRssMB: Math.max(...rows.map((r) => r.downloaderPeakRssMB)),
        seederPeakRssMB: rows[0].seederPeakRssMB.map((_, i) => Math.max(...rows.map((r) => r.seederPeakRssMB[i]))),
        hashOk: rows.every((r) => r.hashOk),
        rounds: rows,
      });
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

/**
 * One run of the plain-Node ceiling (bench/lib/ceiling.js) into a new file; `extra`: e.g. ['--contract']. Cold
 * unless `warmFrom` names a file (of the file's size) to delete just before the receiver starts; `keep` keeps the
 * received file under that name.
 */
async function runCeiling(dir, file, size, extra = [], { warmFrom, keep } = {}) {
  const portFile = join(dir, 'ceiling.port');
  rmSync(portFile, { force: true });
  const dest = join(dir, 'ceiling.out');
  rmSync(dest, { force: true });
  const sender = track(
    spawn(process.execPath, [join(__dirname, 'lib', 'ceiling.js'), 'send', file, portFile, ...extra], {
      stdio: 'ignore',
    }),
  );
  try {
    const port = await waitForFile(portFile);
    if (warmFrom) rmSync(warmFrom);
    else await coldSettle();
    const r = await runNodeScript('ceiling.js', ['receive', port, dest, String(size), ...extra]);
    if (keep) renameSync(dest, keep);
    else rmSync(dest, { force: true });
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
  // a first upload_file of a small file, not measured: the client starts its two hashing threads at its first upload
  // of a file of 16 MiB or more (about 0.1 s, once per process), while hash-rate.js starts its timer only after its
  // own start-up; the downloads get a warm-up for the same reason
  const warmup = join(file, '..', 'upload-warmup.bin');
  randomFile(warmup, 32);
  const warmFrom = process.hrtime.bigint();
  const warmAnswer = await p.run(`upload_file bench ${warmup}`, /shared upload-warmup\.bin.*\n|error:.*\n/);
  const warmupSeconds = hrSeconds(warmFrom);
  if (warmAnswer.includes('error:')) throw new Error(`warm-up upload failed: ${warmAnswer}`);
  await p.run('stop_share bench upload-warmup.bin', /stopped sharing.*\n|error:.*\n/);
  rmSync(warmup, { force: true });
  const pid = p.child.pid;
  resetPeakRss(pid);
  const probeMs = [];
  const alone = [];
  const pairs = [];
  const rounds = [];
  // interleaved like the downloads: bare chunk hashing alone, two bare hashers at once, then upload_file, per round
  // (the first upload shares the file; the next ones find it shared already and hash it all the same)
  for (let round = 1; round <= CFG.rounds; round++) {
    settleDisk();
    const one = await runNodeScript('hash-rate.js', [file]);
    alone.push({ seconds: one.seconds, MBps: size / MB / one.seconds });
    // upload_file has two SHA-1 passes to make (per chunk and whole file) and two cores to make them on: this is
    // what plain Node gets from the same split, both processes starting their clocks at the same moment
    const at = String(Date.now() + 500);
    const both = await Promise.all([
      runNodeScript('hash-rate.js', [file, 'chunks', '--at', at]),
      runNodeScript('hash-rate.js', [file, 'whole', '--at', at]),
    ]);
    const pairSeconds = Math.max(...both.map((r) => r.seconds));
    pairs.push({ seconds: pairSeconds, MBps: size / MB / pairSeconds });
    settleDisk();
    const timed = await timedUpload(p, file);
    rounds.push({ seconds: timed.seconds, MBps: size / MB / timed.seconds, cpuSeconds: timed.cpuSeconds });
    say(
      `  round ${round}: upload_file ${fmt(size / MB / timed.seconds)} MB/s; bare chunk hashing ` +
        `${fmt(alone.at(-1).MBps)} MB/s, two at once ${fmt(pairs.at(-1).MBps)} MB/s`,
    );
  }
  // responsiveness, in an upload of its own: the timed rounds do the same work as the references beside them, which
  // have no probe waking them 50 times a second; this upload's own rate is reported with the probe
  settleDisk();
  let uploading = true;
  // the probe's requests are refused (it holds no capability), and a seeder closes a connection that has been served
  // nothing for 5 s: the probe connects again when that happens (the reconnect is timed as part of its probe)
  let probe = await LineClient.connect('127.0.0.1', p.port);
  const probing = (async () => {
    while (uploading) {
      const from = process.hrtime.bigint();
      await probe.request('GET_CHUNK 0 /nonexistent/probe').catch(async () => {
        probe.close();
        probe = await LineClient.connect('127.0.0.1', p.port);
      });
      probeMs.push(Number(process.hrtime.bigint() - from) / 1e6);
      await sleep(20);
    }
  })();
  const probed = await timedUpload(p, file).finally(() => (uploading = false));
  await probing;
  probe.close();
  probeMs.sort((a, b) => a - b);
  const pct = (q) => probeMs[Math.min(probeMs.length - 1, Math.floor(q * probeMs.length))];
  refs.nodeChunkHash = summarize(alone);
  refs.nodeHashPair = summarize(pairs);
  const m = summarize(rounds);
  return {
    seconds: m.seconds,
    MBps: m.MBps,
    minMBps: m.minMBps,
    maxMBps: m.maxMBps,
    roundsMBps: m.roundsMBps,
    rounds,
    cpuSeconds: median(rounds.map((r) => r.cpuSeconds)),
    peakRssMB: mb(peakRss(pid)),
    vsSha1sum: m.MBps / refs.sha1sum.MBps,
    vsNodeChunkHash: m.MBps / refs.nodeChunkHash.MBps,
    vsNodeHashPair: m.MBps / refs.nodeHashPair.MBps,
    vsNodeChunkAndFileHash: m.MBps / refs.nodeChunkAndFileHash.MBps,
    warmupSeconds,
    probe: {
      count: probeMs.length,
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
      maxMs: probeMs[probeMs.length - 1],
      uploadMBps: size / MB / probed.seconds,
    },
  };
}

/** One `upload_file` of `file` by client `p`: wall seconds from the command to its answer, and the client's CPU. */
async function timedUpload(p, file) {
  const cpu0 = cpuSeconds(p.child.pid);
  const from = process.hrtime.bigint();
  const answer = await p.run(`upload_file bench ${file}`, /shared big\.bin.*\n|error:.*\n/);
  const seconds = hrSeconds(from);
  if (answer.includes('error:')) throw new Error(`upload failed: ${answer}`);
  return { seconds, cpuSeconds: cpuSeconds(p.child.pid) - cpu0 };
}

async function measureDownload(dir, info, seeders, size, expectedHash, ceiling, tag = '') {
  const n = seeders.length;
  const name = `carol${n}${tag}`;
  const cwd = join(dir, name);
  mkdirSync(cwd);
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
  await coldSettle();
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
    ofCeiling: ceiling ? MBps / (size / MB / ceiling.seconds) : undefined,
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
async function scaleSection(results) {
  const dir = join(workDir, 'scale');
  mkdirSync(dir);
  const ports = [await freePort(), await freePort()];
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, ports.map((p) => `127.0.0.1:${p}\n`).join(''));
  const out = {};
  results.scale = out;
  const U = CFG.scaleUsers;
  const G = CFG.scaleGroups;
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
  say(`scale: ${CFG.scaleWireUsers} more users through create_user (scrypt)`);
  const creators = await connectAll(ports[0], 4);
  from = process.hrtime.bigint();
  const names = Array.from({ length: CFG.scaleWireUsers }, (_, i) => `wire${i}`);
  await parallel(names, 4, (u, i) => creators[i % 4].ok(`create_user ${u} ${PASSWORD}`));
  out.users = { count: CFG.scaleWireUsers, seconds: hrSeconds(from), rssMB: mb(currentRss(pid)) };
  creators.forEach((c) => c.close());

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
  // group0 holds the 10,000 files; the huge file goes to a group of its own, which user0 creates
  await owner.ok('create_group scale-huge');
  await owner.ok(
    `upload_file scale-huge /bench/scale/huge.bin ${hugeSize} ${fakeSha1('huge')} @${lines.length} 127.0.0.1:9`,
    lines,
  );
  out.hugeUpload = { chunks: CFG.scaleChunks, seconds: hrSeconds(from) };
  const meta = await sequentialLatency(owner, 'download_file scale-huge huge.bin', 10);
  // what a client does with the reply: the protocol library's own parser
  const { parseFileMetadata } = require(join(DIST, 'apps/client/libs/protocol/src'));
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
    `  list_groups (${G} groups): p50 ${fmt(out.listGroups.p50Ms)} ms; list_files (${CFG.scaleFiles} files): ` +
      `p50 ${fmt(out.listFiles.p50Ms)} ms; download_file (${CFG.scaleChunks} chunks): p50 ${fmt(out.metadata.p50Ms)} ms ` +
      `+ client parse ${fmt(parseMs)} ms; tracker RSS ${out.rssEndMB} MB (peak ${out.peakRssMB} MB)`,
  );

  out.catchUp = await measureCatchUp(dir, info, ports, t, data1, owner);
  sampleConns.forEach((c) => c.close());
  await stopServer(t);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Tracker 2 starts with an empty data dir and pulls everything from tracker 1 through sync (bounded by
 * BENCH_CATCHUP_SECONDS). Done when tracker 2 logs that it is linked (its first fetch of what it lacked is over);
 * then its op log must hold as many changes as tracker 1's, and the wire on tracker 2 must show the groups and files.
 */
async function measureCatchUp(dir, info, ports, t1, data1, owner1) {
  const total = oplogCount(data1);
  const data2 = join(dir, 'tracker-2-data');
  say(`scale: tracker 2 starts empty and catches up ${total} changes from tracker 1 (at most ${CFG.catchUpSeconds} s)`);
  const cpu1 = cpuSeconds(t1.child.pid);
  resetPeakRss(t1.child.pid);
  const from = process.hrtime.bigint();
  const t2 = startProc(
    'tracker 2',
    TRACKER,
    [info, '2', '--data-dir', data2, ...BENCH_TRACKER_FLAGS],
    dir,
    'scale-tracker2',
  );
  const out = { changes: total };
  try {
    await t2.waitFor(/linked with tracker 1\b/, CFG.catchUpSeconds * 1000);
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
      out.filesOnTracker2 === CFG.scaleFiles &&
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

// ---------------------------------------------------------------------------------------------------------------
// report

const fmt = (v) =>
  v === undefined || Number.isNaN(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const pctOf = (r) => `${(100 * r).toFixed(0)}%`;
const check = (ok) => (ok ? 'met' : '**missed**');

/** The min–max MB/s cell of a row summarised over `rounds` rounds (empty for one round). */
const minMax = (r, rounds) => (rounds > 1 ? `${fmt(r.minMBps)}–${fmt(r.maxMBps)}` : '');

function markdown(results) {
  const out = [];
  const m = results.machine;
  out.push(`# p2p-share benchmark (${results.startedAt})`, '');
  out.push(`${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, Node ${m.node}; sizes: ${JSON.stringify(results.config)}`, '');
  const refs = results.references;
  if (refs?.ceiling) {
    const rounds = results.config.rounds;
    const mm = (r) => minMax(r, rounds);
    out.push(
      `## Download throughput (${results.config.fileMb} MiB random file, loopback, source file in page cache; median of ${rounds} ` +
        `round${rounds === 1 ? '' : 's'}, interleaved)`,
      '',
    );
    out.push(
      'Every round measures the ceiling, the ceiling again with warm memory, the ceiling doing the whole contract of a ' +
        'download (through the page cache, then writing as download_file does), sha1sum and then 1, 2, 4 seeders (4, ' +
        '2, 1 in every other round); MB/s and wall s are medians over the rounds, "of ' +
        'ceiling" is median over median ceiling, CPU is the median, RSS the highest of the rounds. Every timed run ' +
        `but the warm one starts cold: disk synced, then ${COLD_SETTLE_MS / 1000} s idle, after which this VM has ` +
        'handed freed memory back to its host and pays for touching it again (see bench.js, `coldSettle`). The warm ' +
        'ceiling starts right after a file as large was deleted and writes into that memory; no download can (they run ' +
        'longer than the host waits), so it is shown, not compared against.',
      '',
    );
    out.push(
      '| run | wall s | MB/s (median) | min–max MB/s | every round MB/s | of ceiling | downloader CPU s | seeders CPU s | downloader peak RSS MB | seeders peak RSS MB | SHA-1 |',
    );
    out.push('|---|---|---|---|---|---|---|---|---|---|---|');
    const c = refs.ceiling;
    out.push(
      `| ceiling: plain Node, 1 TCP stream, reads into the chunk buffer, SHA-1 per 512 KiB chunk, positional writes ` +
        `(2 in flight) into a new file | ${c.seconds.toFixed(2)} | ${fmt(c.MBps)} | ${mm(c)} | ${c.roundsMBps.join(', ')} | 100% | ` +
        `${c.cpuSeconds.toFixed(2)} (receiver) | | | | |`,
    );
    const w = refs.warmCeiling;
    if (w)
      out.push(
        `| the same ceiling with warm memory (right after a file as large was deleted; not used for the ratios) | ` +
          `${w.seconds.toFixed(2)} | ${fmt(w.MBps)} | ${mm(w)} | ${w.roundsMBps.join(', ')} | ${pctOf(w.MBps / c.MBps)} | ` +
          `${w.cpuSeconds.toFixed(2)} (receiver) | | | | |`,
      );
    const l = refs.fullCeiling;
    if (l)
      out.push(
        `| the same ceiling doing what download_file must also do: whole-file SHA-1 (inline, in order) and a durable ` +
          `file (fdatasync every 64 MiB in the background, fsync at the end) | ` +
          `${l.seconds.toFixed(2)} | ${fmt(l.MBps)} | ${mm(l)} | ${l.roundsMBps.join(', ')} | ${pctOf(l.MBps / c.MBps)} | ` +
          `${l.cpuSeconds.toFixed(2)} (receiver) | | | | |`,
      );
    const dc = refs.directCeiling;
    if (dc)
      out.push(
        `| the same, writing as download_file does: whole chunks with O_DIRECT from page-aligned buffers (no page ` +
          `cache, so no fdatasync along the way), whole-file SHA-1 inline, fsync at the end | ` +
          `${dc.seconds.toFixed(2)} | ${fmt(dc.MBps)} | ${mm(dc)} | ${dc.roundsMBps.join(', ')} | ${pctOf(dc.MBps / c.MBps)} | ` +
          `${dc.cpuSeconds.toFixed(2)} (receiver) | | | | |`,
      );
    const s1 = refs.sha1sumRounds;
    if (s1)
      out.push(
        `| sha1sum of the file | ${s1.seconds.toFixed(2)} | ${fmt(s1.MBps)} | ${mm(s1)} | ${s1.roundsMBps.join(', ')} | | | | | | |`,
      );
    for (const d of results.downloads ?? []) {
      out.push(
        `| download_file from ${d.seeders} seeder${d.seeders === 1 ? '' : 's'} | ${d.seconds.toFixed(2)} | ${fmt(d.MBps)} | ` +
          `${mm(d)} | ${d.roundsMBps.join(', ')} | ${pctOf(d.ofCeiling)} | ${d.cpuSeconds.toFixed(2)} | ${d.seederCpuSeconds.join(', ')} | ` +
          `${d.downloaderPeakRssMB} | ${d.seederPeakRssMB.join(', ')} | ${d.hashOk ? 'match' : '**MISMATCH**'} |`,
      );
    }
    const wc = refs.writeCost;
    if (wc) {
      out.push(
        '',
        `Why every run starts cold: writing the same ${results.config.fileMb} MiB into a new file (512 KiB writes, two ` +
          `in flight; bench/lib/write-cost.js) took ${wc.warm.seconds.toFixed(2)} s with ` +
          `${wc.warm.systemSeconds.toFixed(2)} s of system CPU right after a file as large was deleted, and ` +
          `${wc.cold.seconds.toFixed(2)} s with ${wc.cold.systemSeconds.toFixed(2)} s after ` +
          `${COLD_SETTLE_MS / 1000} s idle.`,
      );
    }
    if (refs.directCeiling && results.downloads?.length) {
      out.push(
        '',
        `Against the ceiling doing a download's whole contract and writing as download_file does ` +
          `(${fmt(refs.directCeiling.MBps)} MB/s): ` +
          results.downloads
            .map((d) => `${d.seeders} seeder${d.seeders === 1 ? '' : 's'} ${pctOf(d.ofDirectCeiling)}`)
            .join(', ') +
          '.',
      );
    }
    const d2 = results.downloads?.find((r) => r.seeders === 2);
    const d4 = results.downloads?.find((r) => r.seeders === 4);
    if (d2 && d4) {
      const wins = d4.rounds.filter((r, i) => d2.rounds[i] && r.MBps >= d2.rounds[i].MBps).length;
      out.push(
        '',
        `4 vs 2 seeders on medians: ${fmt(d4.MBps)} vs ${fmt(d2.MBps)} MB/s (${d4.MBps >= d2.MBps ? '+' : ''}` +
          `${(100 * (d4.MBps / d2.MBps - 1)).toFixed(0)}%); 4 seeders were at least as fast as 2 in ${wins} of ` +
          `${d4.rounds.length} round${d4.rounds.length === 1 ? '' : 's'}.`,
      );
    }
    out.push('');
  }
  if (results.upload) {
    const u = results.upload;
    const rounds = u.rounds.length;
    const mm = (r) => minMax(r, rounds);
    out.push(
      `## Upload hashing (\`upload_file\` of the same file; median of ${rounds} round${rounds === 1 ? '' : 's'}, interleaved)`,
      '',
    );
    out.push(
      'Every round measures bare chunk hashing alone, two bare hashers at once, then upload_file (the first shares ' +
        'the file, the next ones find it shared and hash it all the same).',
      '',
    );
    out.push(
      '| run | s | MB/s (median) | min–max MB/s | every round MB/s | vs `upload_file` |',
      '|---|---|---|---|---|---|',
    );
    out.push(
      `| upload_file (whole-file + per-chunk SHA-1, tracker round trip) | ${u.seconds.toFixed(2)} | ${fmt(u.MBps)} | ` +
        `${mm(u)} | ${u.roundsMBps.join(', ')} | |`,
    );
    const c = refs.nodeChunkHash;
    out.push(
      `| Node bare chunk hashing (1 thread, per-chunk SHA-1 only) | ${c.seconds.toFixed(2)} | ${fmt(c.MBps)} | ${mm(c)} | ` +
        `${c.roundsMBps.join(', ')} | upload_file is ${pctOf(u.vsNodeChunkHash)} of it |`,
    );
    const pr = refs.nodeHashPair;
    out.push(
      `| two bare Node hashers at once, in two processes: per-chunk SHA-1 and whole-file SHA-1 of the file (the split ` +
        `upload_file makes; wall time of the slower) | ${pr.seconds.toFixed(2)} | ${fmt(pr.MBps)} | ${mm(pr)} | ` +
        `${pr.roundsMBps.join(', ')} | upload_file is ${pctOf(u.vsNodeHashPair)} of it |`,
    );
    out.push(
      `| Node bare chunk + whole-file hashing (1 thread, the same work as upload_file; once) | ${refs.nodeChunkAndFileHash.seconds.toFixed(2)} | ${fmt(refs.nodeChunkAndFileHash.MBps)} | | | upload_file is ${pctOf(u.vsNodeChunkAndFileHash)} of it |`,
    );
    out.push(
      `| sha1sum (once) | ${refs.sha1sum.seconds.toFixed(2)} | ${fmt(refs.sha1sum.MBps)} | | | upload_file is ${pctOf(u.vsSha1sum)} of it |`,
    );
    out.push('');
    out.push(
      `Uploader CPU ${u.cpuSeconds.toFixed(2)} s (median), peak RSS ${u.peakRssMB} MB. Responsiveness while hashing, in one more upload_file after the ` +
        `rounds: ${u.probe.count} GET_CHUNK probes to the uploading client's chunk server, one every 20 ms, p50 ` +
        `${fmt(u.probe.p50Ms)} ms, p99 ${fmt(u.probe.p99Ms)} ms, max ${fmt(u.probe.maxMs)} ms; that upload ran at ` +
        `${fmt(u.probe.uploadMBps)} MB/s (the timed rounds run without probes, like the references).`,
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
  if (results.scale?.fixture) {
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
  if (d(2))
    t.push(['download from 2 seeders ≥ 70% of the ceiling (medians)', pctOf(d(2).ofCeiling), d(2).ofCeiling >= 0.7]);
  if (d(2) && d(4))
    t.push([
      'from 4 seeders no slower than from 2 (medians)',
      `${fmt(d(4).MBps)} vs ${fmt(d(2).MBps)} MB/s`,
      d(4).MBps >= d(2).MBps,
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
        title:
          `Download of ${results.config.fileMb} MiB on loopback` +
          `${results.config.rounds > 1 ? `, median of ${results.config.rounds} rounds` : ` (${results.startedAt.slice(0, 10)})`}`,
        xLabel: `seeders (1 downloader)${results.config.rounds > 1 ? '; whiskers: lowest and highest round' : ''}`,
        bars: results.downloads.map((d) => ({
          label: `${d.seeders} seeder${d.seeders === 1 ? '' : 's'}`,
          value: d.MBps,
          min: results.config.rounds > 1 ? d.minMBps : undefined,
          max: results.config.rounds > 1 ? d.maxMBps : undefined,
        })),
        ceiling: results.references.ceiling.MBps,
        ceilingLabel: `plain-Node ceiling${results.config.rounds > 1 ? ' (median)' : ''}`,
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
  snapshotDist();
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
