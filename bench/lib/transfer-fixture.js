// What the download and upload sections share: a random file, its references (sha1sum, bare Node hashing), a
// tracker and a group of seeders seed1..seedN plus carol, the downloader. Opened by the first of the two sections
// that runs and closed by the runner after the last (see `uses` in bench/bench.js).
const { join } = require('node:path');
const { rmSync, writeFileSync } = require('node:fs');
const { freePort, randomFile } = require('../../scripts/lib/procs');
const {
  MB,
  MiB,
  PASSWORD,
  list,
  num,
  say,
  sectionDir,
  settleDisk,
  setupGroup,
  sha1sumOf,
  startClient,
  startTracker,
  stopProc,
  stopServer,
  runNodeScript,
} = require('./runtime');
const { fmt } = require('./numbers');

/** Sizes of the download and upload sections (environment). */
const config = {
  fileMb: num('BENCH_FILE_MB', 1024, 64),
  seeders: list('BENCH_SEEDERS', '1,2,4', '1,2,4').map(Number),
  rounds: Math.max(1, num('BENCH_ROUNDS', 4, 1)),
};

async function open(ctx) {
  const { cfg, results } = ctx;
  const dir = sectionDir('transfer');
  const size = cfg.fileMb * MiB;
  const file = join(dir, 'big.bin');
  say(`writing a ${cfg.fileMb} MiB random file`);
  randomFile(file, cfg.fileMb);
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
  const maxSeeders = Math.max(...cfg.seeders);
  const seederNames = Array.from({ length: maxSeeders }, (_, i) => `seed${i + 1}`);
  await setupGroup(port, 'bench', [...seederNames, 'carol']);

  const fx = {
    dir,
    file,
    size,
    hash: sum.hash,
    info,
    tracker,
    /** Started and sharing the file once shareAll has run. */
    seeders: [],
    /**
     * Starts every seeder, logs it in and shares the file (once; later calls find it done). `firstShare(p)`, if
     * given, shares it for the first seeder instead of a plain upload_file (the upload section measures it there).
     */
    async shareAll(firstShare) {
      if (fx.seeders.length) return;
      for (const [i, name] of seederNames.entries()) {
        const p = await startClient(dir, name, info);
        fx.seeders.push(p);
        await p.run(`login ${name} ${PASSWORD}`, /logged in as \S+\n/);
        if (i === 0 && firstShare) await firstShare(p);
        else {
          const answer = await p.run(`upload_file bench ${file}`, /shared big\.bin.*\n|error:.*\n/);
          if (answer.includes('error:')) throw new Error(`${name} could not share the file: ${answer}`);
        }
      }
    },
  };
  return fx;
}

async function close(fx) {
  await Promise.all(fx.seeders.map((p) => stopProc(p)));
  await stopServer(fx.tracker);
  rmSync(fx.dir, { recursive: true, force: true });
}

module.exports = { name: 'transfer', config, open, close };
