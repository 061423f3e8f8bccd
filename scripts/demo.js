#!/usr/bin/env node
// `npm run demo`: two trackers and three clients from the bundled tracker_info.txt, in a temporary folder,
// running the whole workflow: users, a group, uploads by two seeders, a parallel download, show_downloads.
const { spawnSync } = require('node:child_process');
const { copyFileSync, mkdirSync, mkdtempSync, rmSync, readFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { ensureBuild } = require('./ensure-build');
const { CLIENT, Proc, TRACKER, freePort, portFree, randomFile, root, sha1File } = require('./lib/procs');

const FILE_MB = Number(process.env.DEMO_FILE_MB ?? 64);
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s`;
const say = (text) => process.stdout.write(`${stamp()}  ${text}\n`);

/** Types a command at a client's prompt and prints it with its answer and how long it took. */
async function type(client, line, pattern) {
  const started = Date.now();
  const answer = await client.run(line, pattern);
  say(`${client.name.padEnd(5)} $> ${line}   (${Date.now() - started} ms)`);
  for (const l of answer.split('\n')) process.stdout.write(`${' '.repeat(17)}${l}\n`);
  return answer;
}

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
      const t = new Proc(
        `tracker ${n}`,
        process.execPath,
        [TRACKER, info, String(n), '--data-dir', join(dir, `tracker-${n}`)],
        dir,
      );
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
      clients[name] = new Proc(
        name,
        process.execPath,
        [CLIENT, `127.0.0.1:${port}`, info, '--data-dir', join(cwd, '.state')],
        cwd,
      );
      procs.push(clients[name]);
      say(`client ${name} serving chunks on 127.0.0.1:${port}`);
    }
    const { alice, bob, carol } = clients;

    say(`writing a ${FILE_MB} MiB random file for alice and bob`);
    const original = join(dir, 'alice', 'movie.bin');
    randomFile(original, FILE_MB);
    copyFileSync(original, join(dir, 'bob', 'movie.bin'));

    for (const [c, user] of [
      [alice, 'alice'],
      [bob, 'bob'],
      [carol, 'carol'],
    ]) {
      await type(c, `create_user ${user} pw-${user}`, /created\n/);
      await type(c, `login ${user} pw-${user}`, /logged in as \S+\n/);
    }
    await type(alice, 'create_group movies', /created.*\n/);
    await type(bob, 'join_group movies', /owner to accept\n/);
    await type(carol, 'join_group movies', /owner to accept\n/);
    await type(alice, 'list_requests movies', /carol\n/);
    await type(alice, 'accept_request movies bob', /member.*\n/);
    await type(alice, 'accept_request movies carol', /member.*\n/);
    await type(alice, 'list_groups', /movies owner=.*\n/);
    await type(alice, 'upload_file movies movie.bin', /shared movie\.bin.*\n|error:.*\n/);
    await type(bob, 'upload_file movies movie.bin', /shared movie\.bin.*\n|error:.*\n/);
    await type(carol, 'list_files movies', /movie\.bin size=.*\n/);
    mkdirSync(join(dir, 'carol', 'downloads'));
    await type(carol, 'download_file movies movie.bin downloads', /downloading.*\n|error:.*\n/);
    await type(carol, 'show_downloads', /\[[DCF]\].*\n/);
    const done = await carol.waitFor(/(downloaded \[movies\].*|error: download.*)\n/, 120_000);
    say(`carol: ${done.trim().split('\n').pop()}`);
    await type(carol, 'show_downloads', /\[[DCF]\].*\n/);
    await type(alice, 'list_files movies', /movie\.bin size=.*\n/);

    const copy = join(dir, 'carol', 'downloads', 'movie.bin');
    const [a, b] = await Promise.all([sha1File(original), sha1File(copy)]);
    const sum = spawnSync('sha1sum', [original, copy], { encoding: 'utf8' });
    say('hash check:');
    process.stdout.write(
      (sum.status === 0 ? sum.stdout : `${a}  ${original}\n${b}  ${copy}\n`).trimEnd().replace(/^/gm, ' '.repeat(17)) +
        '\n',
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
