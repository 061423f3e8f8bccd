#!/usr/bin/env node
// `npm run bench:memory`: a 1 GiB download from 2 seeders on loopback; reports the downloading client's peak RSS
// (from /usr/bin/time -v) against the 200 MB budget, the seeders' peak RSS, and checks the file's SHA-1.
const { spawnSync } = require('node:child_process');
const { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { ensureBuild } = require('../scripts/ensure-build');
const { CLIENT, Proc, TRACKER, freePort, peakRss, randomFile, sha1File } = require('../scripts/lib/procs');

const SIZE_MB = Number(process.env.BENCH_FILE_MB ?? 1024);
const BUDGET = 200 * 1024 * 1024;
const MB = 1024 * 1024;

async function main() {
  if (!existsSync('/usr/bin/time')) throw new Error('/usr/bin/time is missing (apt-get install time)');
  ensureBuild();
  const dir = mkdtempSync(join(tmpdir(), 'p2p-bench-mem-'));
  const procs = [];
  try {
    const trackerPort = await freePort();
    const info = join(dir, 'tracker_info.txt');
    writeFileSync(info, `127.0.0.1:${trackerPort}\n`);
    const tracker = new Proc(
      'tracker',
      process.execPath,
      [TRACKER, info, '1', '--data-dir', join(dir, 'tracker')],
      dir,
    );
    procs.push(tracker);
    await tracker.waitFor(/listening on/);

    const client = async (name) => {
      const cwd = join(dir, name);
      mkdirSync(cwd);
      const port = await freePort();
      const p = new Proc(
        name,
        process.execPath,
        [CLIENT, `127.0.0.1:${port}`, info, '--data-dir', join(cwd, '.state')],
        cwd,
      );
      procs.push(p);
      return { p, port, cwd };
    };
    const alice = await client('alice');
    const bob = await client('bob');
    process.stdout.write(`writing a ${SIZE_MB} MiB random file...\n`);
    const original = join(alice.cwd, 'big.bin');
    randomFile(original, SIZE_MB);
    copyFileSync(original, join(bob.cwd, 'big.bin'));

    await alice.p.run('create_user alice pa', /created/);
    await alice.p.run('login alice pa', /logged in/);
    await alice.p.run('create_group bench', /created/);
    await bob.p.run('create_user bob pb', /created/);
    await bob.p.run('login bob pb', /logged in/);
    await bob.p.run('join_group bench', /asked/);
    await alice.p.run('accept_request bench bob', /member/);
    const setup = await client('carol');
    await setup.p.run('create_user carol pc', /created/);
    await setup.p.run('login carol pc', /logged in/);
    await setup.p.run('join_group bench', /asked/);
    setup.p.child.stdin.end();
    await setup.p.exited;
    await alice.p.run('accept_request bench carol', /member/);
    await alice.p.run('upload_file bench big.bin', /shared|error/);
    await bob.p.run('upload_file bench big.bin', /shared|error/);

    // the measured run: log in, download, exit at end of input once the download is done
    const carolCwd = join(dir, 'carol');
    const started = Date.now();
    const timed = spawnSync(
      '/usr/bin/time',
      ['-v', process.execPath, CLIENT, `127.0.0.1:${setup.port}`, info, '--data-dir', join(carolCwd, '.state')],
      {
        cwd: carolCwd,
        input: 'login carol pc\ndownload_file bench big.bin copy.bin\n',
        encoding: 'utf8',
        maxBuffer: 64 * MB,
      },
    );
    const wall = (Date.now() - started) / 1000;
    if (timed.status !== 0) throw new Error(`downloader failed:\n${timed.stdout}\n${timed.stderr}`);
    const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(timed.stderr)?.[1]);
    const cpu = ['User time \\(seconds\\)', 'System time \\(seconds\\)']
      .map((k) => Number(new RegExp(`${k}: ([\\d.]+)`).exec(timed.stderr)?.[1] ?? 0))
      .reduce((a, b) => a + b, 0);
    const summary = /downloaded .*/.exec(timed.stdout)?.[0] ?? '(no summary)';
    const seederRss = [alice, bob].map((s) => peakRss(s.p.child.pid) ?? 0);
    const [want, got] = await Promise.all([sha1File(original), sha1File(join(carolCwd, 'copy.bin'))]);

    const ok = rssKb * 1024 < BUDGET && want === got;
    const rows = [
      ['file', `${SIZE_MB} MiB from 2 seeders`],
      ['downloader wall time (incl. start-up and login)', `${wall.toFixed(2)} s`],
      ['downloader CPU time', `${cpu.toFixed(2)} s`],
      ['downloader peak RSS', `${(rssKb / 1024).toFixed(1)} MB (budget ${BUDGET / MB} MB)`],
      ['seeder peak RSS', seederRss.map((b) => `${(b / MB).toFixed(1)} MB`).join(', ')],
      ['SHA-1', want === got ? `match (${got})` : `MISMATCH ${want} vs ${got}`],
      ['client summary', summary],
      ['result', ok ? 'PASS' : 'FAIL'],
    ];
    process.stdout.write(
      '\n| measure | value |\n|---|---|\n' + rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n') + '\n',
    );
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  process.exit(1);
});
