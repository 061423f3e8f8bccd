// What every bench section shares: the log, the child processes (all killed at the end, whatever happens), the apps
// run from a copy of dist/, the work dir, and small helpers to start trackers and clients and to wait on files.
const { spawn, spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } = require('node:fs');
const { delimiter, join, relative } = require('node:path');
const { ensureBuild } = require('../../scripts/ensure-build');
const { CLIENT, Proc, TRACKER, freePort, root } = require('../../scripts/lib/procs');
const { LineClient, pipeline } = require('./line-client');

const MB = 1e6;
const MiB = 1024 * 1024;
const CHUNK = 512 * 1024;
const PASSWORD = 'bench-pw';

const QUICK = process.env.BENCH_QUICK === '1';
/** A number from the environment; `quick` when BENCH_QUICK=1 and it is not set. */
const num = (name, full, quick) => Number(process.env[name] ?? (QUICK ? quick : full));
/** A comma-separated list from the environment. */
const list = (name, full, quick) =>
  (process.env[name] ?? (QUICK ? quick : full))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const cpuProf = process.env.BENCH_CPU_PROF;

const t0 = Date.now();
const say = (text) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${text}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hrSeconds = (from) => Number(process.hrtime.bigint() - from) / 1e9;

/** The apps every child runs: a copy of dist/ taken at start (see snapshotDist). */
const apps = { tracker: TRACKER, client: CLIENT, dist: join(root, 'dist') };

/** Every child process started, so that they all die at the end whatever happens. */
const children = new Set();
let workDir;

function setWorkDir(dir) {
  workDir = dir;
}

/** A new, empty folder `name` in the run's work dir (a section run again after a failure starts afresh). */
function sectionDir(name) {
  const dir = join(workDir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  return dir;
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killChildren() {
  for (const child of children) child.kill('SIGKILL');
}

/** Kills every child still running and removes the work dir. */
async function cleanup() {
  killChildren();
  await Promise.all(
    [...children].map(
      (c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r))),
    ),
  );
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

function nodeArgs(label) {
  if (!cpuProf) return [];
  mkdirSync(cpuProf, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`, `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`];
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
    apps.tracker,
    [info, String(n), '--data-dir', join(dir, `tracker-${n}-data`), ...BENCH_TRACKER_FLAGS],
    dir,
    label,
  );
  await t.waitFor(/listening on \S+/, 30_000);
  return t;
}

/** A client shell in its own folder `dir/name` with its own data dir; `flags`: more of its command-line flags. */
async function startClient(dir, name, info, label = name, flags = []) {
  const cwd = join(dir, name);
  mkdirSync(cwd, { recursive: true });
  const port = await freePort();
  const p = startProc(
    name,
    apps.client,
    [`127.0.0.1:${port}`, info, '--data-dir', join(cwd, '.state'), ...flags],
    cwd,
    label,
  );
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
 * create_user for everyone (unless `existing`: a second group for the same users); the first creates `group`, the
 * others join and are accepted.
 */
async function setupGroup(port, group, users, { existing = false } = {}) {
  const conns = await connectAll(port, users.length);
  await parallel(users, 8, async (u, i) => {
    if (!existing) await conns[i].ok(`create_user ${u} ${PASSWORD}`);
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
      const tracker = join(to, relative(from, TRACKER));
      const client = join(to, relative(from, CLIENT));
      const same = listing(to) === before && listing(from) === before;
      if (existsSync(tracker) && existsSync(client) && same && complete(to)) {
        apps.tracker = tracker;
        apps.client = client;
        apps.dist = to;
        break;
      }
    } catch (err) {
      if (attempt >= 10) throw err;
    }
    if (attempt >= 10) throw new Error('dist/ kept changing while it was copied');
    spawnSync('sleep', ['2']);
  }
  process.env.NODE_PATH = [join(root, 'node_modules'), process.env.NODE_PATH].filter(Boolean).join(delimiter);
  process.env.BENCH_DIST = apps.dist;
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

/** Runs bench/lib/<script> with `args`; resolves with the JSON of its last output line. */
function runNodeScript(script, args) {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, [join(__dirname, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
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

module.exports = {
  MB,
  MiB,
  CHUNK,
  PASSWORD,
  QUICK,
  num,
  list,
  cpuProf,
  t0,
  say,
  sleep,
  hrSeconds,
  apps,
  setWorkDir,
  sectionDir,
  track,
  killChildren,
  cleanup,
  startProc,
  stopProc,
  stopServer,
  BENCH_TRACKER_FLAGS,
  startTracker,
  startClient,
  connectAll,
  parallel,
  setupGroup,
  snapshotDist,
  settleDisk,
  COLD_SETTLE_MS,
  coldSettle,
  fakeSha1,
  sha1sumOf,
  runNodeScript,
  waitForFile,
};
