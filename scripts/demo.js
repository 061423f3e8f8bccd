#!/usr/bin/env node
// `npm run demo`: two trackers and three clients from the bundled tracker_info.txt, in a temporary folder,
// running the whole workflow: users, a group, uploads by two seeders, a parallel download, show_downloads.
const { spawn, spawnSync } = require('node:child_process');
const { createHash, randomBytes } = require('node:crypto');
const {
  copyFileSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  writeSync,
  rmSync,
  readFileSync,
} = require('node:fs');
const net = require('node:net');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { ensureBuild, root } = require('./ensure-build');

const FILE_MB = Number(process.env.DEMO_FILE_MB ?? 64);
const TRACKER = join(root, 'dist/apps/tracker/apps/tracker/src/main.js');
const CLIENT = join(root, 'dist/apps/client/apps/client/src/main.js');
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s`;
const say = (text) => process.stdout.write(`${stamp()}  ${text}\n`);

class Proc {
  constructor(name, args, cwd) {
    this.name = name;
    this.out = '';
    this.mark = 0;
    this.child = spawn(process.execPath, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (d) => (this.out += d));
    this.child.stderr.setEncoding('utf8').on('data', (d) => (this.out += d));
    this.exited = new Promise((r) => this.child.once('exit', r));
  }
  async waitFor(pattern, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = this.out.slice(this.mark);
      const m = pattern.exec(seen);
      if (m) {
        this.mark += m.index + m[0].length;
        return seen.slice(0, m.index + m[0].length);
      }
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited:\n${this.out}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${pattern} in time; output:\n${seen}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  /** Types a command at this client's prompt and prints the answer. */
  async run(line, pattern) {
    const started = Date.now();
    this.mark = this.out.length;
    this.child.stdin.write(line + '\n');
    const answer = (await this.waitFor(pattern)).trimEnd();
    say(`${this.name.padEnd(5)} $> ${line}   (${Date.now() - started} ms)`);
    for (const l of answer.split('\n')) process.stdout.write(`${' '.repeat(17)}${l}\n`);
    return answer;
  }
}

const portFree = (port) =>
  new Promise((resolve) => {
    const srv = net.createServer().once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
const freePort = () =>
  new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
const sha1 = (path) =>
  new Promise((resolve, reject) => {
    const h = createHash('sha1');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });

async function main() {
  ensureBuild();
  const dir = mkdtempSync(join(tmpdir(), 'p2p-demo-'));
  const procs = [];
  const cleanup = async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
  try {
    const info = join(dir, 'tracker_info.txt');
    copyFileSync(join(root, 'tracker_info.txt'), info);
    const trackerPorts = readFileSync(info, 'utf8')
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean)
      .map((l) => Number(l.split(/[: ]/).pop()));
    for (const port of trackerPorts) {
      if (!(await portFree(port)))
        throw new Error(
          `port ${port} from tracker_info.txt is in use; stop what runs there (npm start?) and try again`,
        );
    }
    say(`working in ${dir}`);
    for (let n = 1; n <= trackerPorts.length; n++) {
      const t = new Proc(`tracker ${n}`, [TRACKER, info, String(n), '--data-dir', join(dir, `tracker-${n}`)], dir);
      procs.push(t);
      await t.waitFor(/listening on \S+/);
      say(`tracker ${n} listening on 127.0.0.1:${trackerPorts[n - 1]}`);
    }
    const clients = {};
    for (const [name, wanted] of [
      ['alice', 7001],
      ['bob', 7002],
      ['carol', 7003],
    ]) {
      const port = (await portFree(wanted)) ? wanted : await freePort();
      const cwd = join(dir, name);
      mkdirSync(cwd);
      clients[name] = new Proc(name, [CLIENT, `127.0.0.1:${port}`, info, '--data-dir', join(cwd, '.state')], cwd);
      procs.push(clients[name]);
      say(`client ${name} serving chunks on 127.0.0.1:${port}`);
    }
    const { alice, bob, carol } = clients;

    say(`writing a ${FILE_MB} MiB random file for alice and bob`);
    const original = join(dir, 'alice', 'movie.bin');
    const fd = openSync(original, 'w');
    for (let i = 0; i < FILE_MB; i++) writeSync(fd, randomBytes(1024 * 1024));
    closeSync(fd);
    copyFileSync(original, join(dir, 'bob', 'movie.bin'));

    for (const [c, user] of [
      [alice, 'alice'],
      [bob, 'bob'],
      [carol, 'carol'],
    ]) {
      await c.run(`create_user ${user} pw-${user}`, /created\n/);
      await c.run(`login ${user} pw-${user}`, /logged in as \S+\n/);
    }
    await alice.run('create_group movies', /created.*\n/);
    await bob.run('join_group movies', /owner to accept\n/);
    await carol.run('join_group movies', /owner to accept\n/);
    await alice.run('list_requests movies', /carol\n/);
    await alice.run('accept_request movies bob', /member.*\n/);
    await alice.run('accept_request movies carol', /member.*\n/);
    await alice.run('list_groups', /movies owner=.*\n/);
    await alice.run('upload_file movies movie.bin', /shared movie\.bin.*\n|error:.*\n/);
    await bob.run('upload_file movies movie.bin', /shared movie\.bin.*\n|error:.*\n/);
    await carol.run('list_files movies', /movie\.bin size=.*\n/);
    mkdirSync(join(dir, 'carol', 'downloads'));
    await carol.run('download_file movies movie.bin downloads', /downloading.*\n|error:.*\n/);
    await carol.run('show_downloads', /\[[DCF]\].*\n/);
    const done = await carol.waitFor(/(downloaded \[movies\].*|error: download.*)\n/, 120_000);
    say(`carol: ${done.trim().split('\n').pop()}`);
    await carol.run('show_downloads', /\[[DCF]\].*\n/);
    await alice.run('list_files movies', /movie\.bin size=.*\n/);

    const copy = join(dir, 'carol', 'downloads', 'movie.bin');
    const [a, b] = await Promise.all([sha1(original), sha1(copy)]);
    const sum = spawnSync('sha1sum', [original, copy], { encoding: 'utf8' });
    say('hash check:');
    process.stdout.write(
      (sum.status === 0 ? sum.stdout : `${a}  ${original}\n${b}  ${copy}\n`).trimEnd().replace(/^/gm, ' '.repeat(17)) + '\n',
    );
    for (const c of [alice, bob, carol]) c.child.stdin.end('exit\n');
    await Promise.all([alice, bob, carol].map((c) => c.exited));
    if (a !== b) throw new Error('the downloaded copy differs from the original');
    say(`the downloaded copy is identical to the original (sha1 ${a}); cleaning up`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(1);
});
