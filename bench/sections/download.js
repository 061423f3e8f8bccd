// download_file of the transfer file from 1, 2, 4 seeders against a plain-Node ceiling measured in every round
// (bench/lib/ceiling.js), interleaved rounds, medians; also writes the throughput chart.
const { spawn } = require('node:child_process');
const { mkdirSync, renameSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { cpuSeconds, freePort, peakRss, resetPeakRss } = require('../../scripts/lib/procs');
const {
  COLD_SETTLE_MS,
  MB,
  PASSWORD,
  apps,
  coldSettle,
  hrSeconds,
  runNodeScript,
  say,
  settleDisk,
  sha1sumOf,
  sleep,
  startProc,
  stopProc,
  track,
  waitForFile,
} = require('../lib/runtime');
const { fmt, mb, median, minMax, pctOf, summarize } = require('../lib/numbers');
const { throughputChart } = require('../lib/svg');
const transfer = require('../lib/transfer-fixture');

/** Unmeasured downloads from every seeder before the timed ones (see where they run). */
const WARMUP_DOWNLOADS = 4;

async function run({ cfg, results, fixture }) {
  const fx = await fixture(transfer);
  await fx.shareAll();
  const { dir, file, size, info, seeders } = fx;
  const sum = { hash: fx.hash };
  // 1, 2, 4 seeders in interleaved rounds (1,2,4,1,2,4,...), each round with its own ceiling, the ceiling doing a
  // download's whole contract, and sha1sum, so that a noisy moment on this shared machine hits one sample of every
  // row rather than all samples of one row; the tables report the medians
  results.downloads = [];
  // what the memory a run writes into costs here (see coldSettle): the same writes, warm and cold
  const writeCost = await runNodeScript('write-cost.js', [dir, String(cfg.fileMb), String(COLD_SETTLE_MS)]);
  results.references.writeCost = writeCost;
  say(
    `  writing ${cfg.fileMb} MiB into a new file: warm ${writeCost.warm.seconds.toFixed(2)} s (system ` +
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
    downloads: new Map(cfg.seeders.map((n) => [n, []])),
  };
  let online = seeders.length;
  for (let round = 1; round <= cfg.rounds; round++) {
    say(`  round ${round} of ${cfg.rounds}`);
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
    for (const n of round % 2 === 1 ? cfg.seeders : [...cfg.seeders].reverse()) {
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
  for (const n of cfg.seeders) {
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
    spawn(process.execPath, [join(__dirname, '..', 'lib', 'ceiling.js'), 'send', file, portFile, ...extra], {
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

async function measureDownload(dir, info, seeders, size, expectedHash, ceiling, tag = '') {
  const n = seeders.length;
  const name = `carol${n}${tag}`;
  const cwd = join(dir, name);
  mkdirSync(cwd);
  const port = await freePort();
  const p = startProc(
    name,
    apps.client,
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

function markdown(results) {
  const out = [];
  const refs = results.references;
  if (!refs?.ceiling) return out;
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
      'handed freed memory back to its host and pays for touching it again (see bench/lib/runtime.js, `coldSettle`). ' +
      'The warm ceiling starts right after a file as large was deleted and writes into that memory; no download can ' +
      '(they run longer than the host waits), so it is shown, not compared against.',
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
  return out;
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
  return t;
}

/** The throughput chart, when there are download rows. */
function files(results) {
  if (!results.downloads?.length) return {};
  return {
    'throughput.svg': throughputChart({
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
  };
}

module.exports = {
  name: 'download',
  config: transfer.config,
  uses: [transfer],
  runsAfter: ['upload'],
  run,
  markdown,
  targets,
  files,
};
