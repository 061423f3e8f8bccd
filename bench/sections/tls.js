// TLS against plain text in the same run: one download from a seeder listed with a fingerprint (both clients over
// TLS, the downloader opening TLS with the seeder) beside the same download from a seeder listed without one (both
// clients with --no-tls: in clear), interleaved rounds, medians; then the tracker section's request mix over
// LineConnections opened with and without `tls`, interleaved closed-loop windows.
const { readFileSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { cpuSeconds, freePort, peakRss, randomFile, resetPeakRss } = require('../../scripts/lib/procs');
const { LineClient, pipeline } = require('../lib/line-client');
const { closedLoop } = require('../lib/load');
const {
  MB,
  MiB,
  CHUNK,
  PASSWORD,
  apps,
  coldSettle,
  fakeSha1,
  hrSeconds,
  num,
  parallel,
  say,
  sectionDir,
  setupGroup,
  settleDisk,
  sha1sumOf,
  sleep,
  startClient,
  startTracker,
  stopProc,
  stopServer,
} = require('../lib/runtime');
const { fmt, mb, median, minMax, pctOf, summarize } = require('../lib/numbers');

const config = {
  tlsFileMb: num('BENCH_TLS_MB', 256, 32),
  tlsRounds: Math.max(1, num('BENCH_TLS_ROUNDS', 5, 1)),
  tlsConns: num('BENCH_TLS_CONNS', 50, 20),
  tlsLoadSeconds: num('BENCH_TLS_SECONDS', 3, 2),
};

/** The apps' TLS and line-client libraries, from the run's copy of dist/. */
const tlsLib = () => require(join(apps.dist, 'apps/tracker/libs/tls/src'));
const lineLib = () => require(join(apps.dist, 'apps/tracker/libs/line-client/src'));

/** The two ways a download is measured: the flags of both clients, and the group the seeder of that kind shares in. */
const MODES = [
  { name: 'tls', group: 'tlsbench', flags: [] },
  { name: 'plain', group: 'plainbench', flags: ['--no-tls'] },
];

async function run({ cfg, results }) {
  const dir = sectionDir('tls');
  const port = await freePort();
  const info = join(dir, 'tracker_info.txt');
  writeFileSync(info, `127.0.0.1:${port}\n`);
  const tracker = await startTracker(dir, info, 1, 'tls-tracker');
  const trackerFp = tlsLib().fingerprintOf(readFileSync(join(dir, 'tracker-1-data', 'identity.crt'), 'utf8'));
  results.tls = { trackerFingerprint: trackerFp };

  const size = cfg.tlsFileMb * MiB;
  const file = join(dir, 'big.bin');
  say(`tls: writing a ${cfg.tlsFileMb} MiB random file; one seeder over TLS, one with --no-tls`);
  randomFile(file, cfg.tlsFileMb);
  settleDisk();
  const hash = sha1sumOf(file).hash;
  const users = ['seedtls', 'seedplain', 'probe', ...MODES.map((m) => `dl${m.name}`)];
  await setupGroup(port, 'tlsbench', users);
  await setupGroup(port, 'plainbench', users, { existing: true });

  const seeders = {};
  for (const m of MODES) {
    const name = `seed${m.name}`;
    const p = await startClient(dir, name, info, `tls-${name}`, m.flags);
    seeders[m.name] = p;
    await p.run(`login ${name} ${PASSWORD}`, /logged in as \S+\n/);
    const answer = await p.run(`upload_file ${m.group} ${file}`, /shared big\.bin.*\n|error:.*\n/);
    if (answer.includes('error:')) throw new Error(`${name} could not share the file: ${answer}`);
  }
  // what the tracker lists: the TLS seeder with its fingerprint, the other without (else the rows compare nothing)
  const probe = await LineClient.connect('127.0.0.1', port);
  await probe.ok(`login probe ${PASSWORD}`);
  const listed = {};
  for (const m of MODES) {
    const reply = await probe.ok(`download_file ${m.group} big.bin`);
    const line = reply.lines.find((l) => l.startsWith('seeder_fingerprints:'));
    listed[m.name] = line === undefined ? undefined : line.slice('seeder_fingerprints:'.length);
  }
  probe.close();
  results.tls.listed = listed;
  if (listed.tls === undefined || !/^sha256:[0-9a-f]{64}$/.test(listed.tls) || listed.plain !== '-') {
    throw new Error(
      `the tracker does not list the seeders as expected (TLS seeder with its fingerprint, --no-tls seeder with -): ` +
        JSON.stringify(listed),
    );
  }

  // one download of each kind first, not measured: each seeder's chunk-serving code gets compiled before it is timed
  for (const m of MODES) await measureDownload(dir, info, m, seeders[m.name], size, hash, 'warmup', false);
  const samples = { tls: [], plain: [] };
  for (let round = 1; round <= cfg.tlsRounds; round++) {
    // every other round the other mode first, so that neither always goes first
    const order = round % 2 === 1 ? MODES : [...MODES].reverse();
    for (const m of order) {
      const row = await measureDownload(dir, info, m, seeders[m.name], size, hash, `r${round}`);
      samples[m.name].push(row);
      say(
        `  round ${round}, ${m.name}: ${fmt(row.MBps)} MB/s (${row.seconds.toFixed(2)} s), downloader CPU ` +
          `${row.cpuSeconds.toFixed(2)} s, seeder CPU ${row.seederCpuSeconds.toFixed(2)} s, RSS ` +
          `${row.downloaderPeakRssMB}/${row.seederPeakRssMB} MB, hash ${row.hashOk ? 'ok' : 'BAD'}`,
      );
    }
  }
  const summary = (rows) =>
    summarize(rows, {
      cpuSeconds: median(rows.map((r) => r.cpuSeconds)),
      seederCpuSeconds: median(rows.map((r) => r.seederCpuSeconds)),
      downloaderPeakRssMB: Math.max(...rows.map((r) => r.downloaderPeakRssMB)),
      seederPeakRssMB: Math.max(...rows.map((r) => r.seederPeakRssMB)),
      hashOk: rows.every((r) => r.hashOk),
    });
  const tls = summary(samples.tls);
  const plain = summary(samples.plain);
  results.tls.downloads = { fileMb: cfg.tlsFileMb, tls, plain, ratio: tls.MBps / plain.MBps };
  say(`  download over TLS: ${pctOf(results.tls.downloads.ratio)} of plain (medians)`);
  await Promise.all(Object.values(seeders).map((p) => stopProc(p)));

  results.tls.requests = await measureRequests(cfg, dir, port, tracker, trackerFp);
  say(`  tracker requests over TLS: ${pctOf(results.tls.requests.ratio)} of plain`);
  await stopServer(tracker);
  rmSync(dir, { recursive: true, force: true });
}

/** One download of big.bin by a new client of `mode` from the seeder of that mode, timed from the request. */
async function measureDownload(dir, info, mode, seeder, size, expectedHash, tag, cold = true) {
  const name = `dl${mode.name}`;
  const p = await startClient(dir, `${name}-${tag}`, info, `tls-${name}`, mode.flags);
  await p.run(`login ${name} ${PASSWORD}`, /logged in as \S+\n/);
  resetPeakRss(seeder.child.pid);
  if (cold) await coldSettle();
  const cpu0 = cpuSeconds(p.child.pid);
  const seederCpu0 = cpuSeconds(seeder.child.pid);
  const from = process.hrtime.bigint();
  p.mark = p.out.length;
  p.child.stdin.write(`download_file ${mode.group} big.bin copy.bin\n`);
  const done = await p.waitFor(/downloaded .*\n|error:.*\n/, 300_000);
  const seconds = hrSeconds(from);
  const cpu = cpuSeconds(p.child.pid) - cpu0;
  const seederCpu = cpuSeconds(seeder.child.pid) - seederCpu0;
  const rss = peakRss(p.child.pid);
  const seederRss = peakRss(seeder.child.pid);
  const summary = /downloaded .*/.exec(done)?.[0];
  // the client now announces itself as a seeder; let that finish before ending its input (see the download section)
  for (let i = 0; summary && i < 100; i++) {
    const listing = await p.run(`list_files ${mode.group}`, /big\.bin .*\n|error:.*\n/);
    if (listing.includes('seeders=2')) break;
    await sleep(100);
  }
  await stopProc(p, 30_000);
  if (!summary) throw new Error(`download over ${mode.name} failed:\n${p.out}`);
  const got = sha1sumOf(join(p.cwd, 'copy.bin')).hash;
  rmSync(p.cwd, { recursive: true, force: true });
  return {
    seconds,
    MBps: size / MB / seconds,
    cpuSeconds: cpu,
    seederCpuSeconds: seederCpu,
    downloaderPeakRssMB: mb(rss),
    seederPeakRssMB: mb(seederRss),
    hashOk: got === expectedHash,
    summary,
  };
}

/**
 * The tracker section's mix (list_groups, list_files, download_file metadata of 64 MiB files) on `tlsConns`
 * logged-in connections opened without and with `tls` (STARTTLS, the tracker's certificate checked against its
 * fingerprint, a client certificate presented), closed-loop windows interleaved plain, TLS, TLS, plain, twice over.
 */
async function measureRequests(cfg, dir, port, tracker, trackerFp) {
  const n = cfg.tlsConns;
  say(`  tracker requests: ${n} connections in clear and ${n} over TLS, ${cfg.tlsLoadSeconds} s windows`);
  const owner = await LineClient.connect('127.0.0.1', port);
  await owner.ok(`create_user tlsowner ${PASSWORD}`);
  await owner.ok(`login tlsowner ${PASSWORD}`);
  await owner.ok('create_group tlsload');
  const files = 20;
  const fileSize = 64 * MiB;
  const chunks = Array.from({ length: fileSize / CHUNK }, (_, i) => fakeSha1(`chunk${i}`));
  for (let f = 0; f < files; f++) {
    await owner.ok(
      `upload_file tlsload /bench/tls/file${f}.bin ${fileSize} ${fakeSha1(`file${f}`)} ${chunks.join(',')} 127.0.0.1:9`,
    );
  }
  const identity = tlsLib().loadOrCreateIdentity(join(dir, 'bench-identity'), 'bench');
  const verify = (fp) => {
    if (fp !== trackerFp) throw new Error(`tracker presented ${fp}, not ${trackerFp}`);
  };
  const open = async (tls) =>
    new LineClient(
      await lineLib().LineConnection.open(
        { host: '127.0.0.1', port },
        { timeoutMs: 30_000, hello: true, ...(tls && { tls: { identity, verify } }) },
      ),
    );
  const conns = { plain: [], tls: [] };
  const handshakeFrom = process.hrtime.bigint();
  for (const kind of ['plain', 'tls']) {
    const from = process.hrtime.bigint();
    conns[kind] = await parallel(Array.from({ length: n }), 25, () => open(kind === 'tls'));
    say(`    ${n} ${kind} connections opened in ${hrSeconds(from).toFixed(2)} s`);
  }
  const all = [...conns.plain, ...conns.tls];
  await parallel(all, 8, async (c, i) => {
    await c.ok(`create_user tls${i} ${PASSWORD}`);
    await c.ok(`login tls${i} ${PASSWORD}`);
    await c.ok('join_group tlsload');
  });
  await pipeline(
    owner,
    all.map((_, i) => `accept_request tlsload tls${i}`),
  );
  const setupSeconds = hrSeconds(handshakeFrom);
  const mix = (conn, k) => {
    switch ((conn + k) % 3) {
      case 0:
        return 'list_groups';
      case 1:
        return 'list_files tlsload';
      default:
        return `download_file tlsload file${(conn * 7 + k) % files}.bin`;
    }
  };
  // a 2 s window of each kind first, not measured, for the tracker's code to be compiled
  for (const kind of ['plain', 'tls']) await closedLoop(conns[kind], mix, { seconds: 2 });
  const windows = { plain: [], tls: [] };
  // this VM's speed drifts by a third between windows of the same kind: four of each, and their medians
  for (const kind of ['plain', 'tls', 'tls', 'plain', 'plain', 'tls', 'tls', 'plain']) {
    const cpu0 = cpuSeconds(tracker.child.pid);
    const r = await closedLoop(conns[kind], mix, { seconds: cfg.tlsLoadSeconds });
    r.serverCpuSeconds = cpuSeconds(tracker.child.pid) - cpu0;
    windows[kind].push(r);
    say(
      `    ${kind}: ${fmt(r.rps)} req/s (p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms, errors ` +
        `${r.errReplies + r.failures + r.timeouts}, tracker CPU ${r.serverCpuSeconds.toFixed(2)} s)`,
    );
  }
  [...all, owner].forEach((c) => c.close());
  const pick = (rs) => ({
    rps: median(rs.map((r) => r.rps)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    errors: rs.reduce((e, r) => e + r.errReplies + r.failures + r.timeouts, 0),
    serverCpuMsPerKiloRequest: median(rs.map((r) => (1e6 * r.serverCpuSeconds) / Math.max(1, r.requests))),
    windows: rs,
  });
  const plain = pick(windows.plain);
  const tls = pick(windows.tls);
  return { connections: n, setupSeconds, plain, tls, ratio: tls.rps / plain.rps };
}

function markdown(results) {
  const out = [];
  const t = results.tls;
  if (!t?.downloads) return out;
  const d = t.downloads;
  const rounds = results.config.tlsRounds;
  out.push(
    `## TLS against plain text (${d.fileMb} MiB random file, one seeder, loopback; median of ${rounds} round` +
      `${rounds === 1 ? '' : 's'}, interleaved)`,
    '',
    'TLS: seeder and downloader without flags; the seeder shared the file over TLS, so the tracker lists it with its ' +
      'fingerprint and the downloader opens TLS with it from the first byte (TLS 1.3, AES-128-GCM) and checks that certificate. ' +
      'Plain: both clients with `--no-tls`, the seeder listed with `-`, the chunks in clear. After one unmeasured ' +
      'download of each kind, every timed download starts cold (see the download section).',
    '',
    '| run | wall s | MB/s (median) | min–max MB/s | every round MB/s | of plain | downloader CPU s | seeder CPU s | downloader peak RSS MB | seeder peak RSS MB | SHA-1 |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const [name, r] of [
    ['download_file in clear (`--no-tls`)', d.plain],
    ['download_file over TLS', d.tls],
  ]) {
    out.push(
      `| ${name} | ${r.seconds.toFixed(2)} | ${fmt(r.MBps)} | ${minMax(r, rounds)} | ${r.roundsMBps.join(', ')} | ` +
        `${pctOf(r.MBps / d.plain.MBps)} | ${r.cpuSeconds.toFixed(2)} | ${r.seederCpuSeconds.toFixed(2)} | ` +
        `${r.downloaderPeakRssMB} | ${r.seederPeakRssMB} | ${r.hashOk ? 'match' : '**MISMATCH**'} |`,
    );
  }
  const q = t.requests;
  if (q) {
    out.push(
      '',
      `Tracker requests: the tracker section's mix on ${q.connections} logged-in connections in clear and ` +
        `${q.connections} over TLS (STARTTLS, the tracker's certificate checked against its fingerprint, a client ` +
        `certificate presented), ${results.config.tlsLoadSeconds} s closed-loop windows in the order plain, TLS, TLS, ` +
        'plain, twice over (after an unmeasured 2 s window of each); medians of the four windows of each.',
      '',
      '| connections | req/s | p50 ms | p99 ms | errors | tracker CPU ms per 1,000 requests | of plain |',
      '|---|---|---|---|---|---|---|',
    );
    for (const [name, r] of [
      ['in clear', q.plain],
      ['over TLS', q.tls],
    ]) {
      out.push(
        `| ${name} | ${fmt(r.rps)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.errors} | ` +
          `${fmt(r.serverCpuMsPerKiloRequest)} | ${pctOf(r.rps / q.plain.rps)} |`,
      );
    }
  }
  out.push('');
  return out;
}

function targets(results) {
  const t = results.tls;
  if (!t) return [];
  return [
    [
      'download over TLS ≥ 80% of plain',
      t.downloads ? pctOf(t.downloads.ratio) : 'not measured',
      t.downloads ? t.downloads.ratio >= 0.8 && t.downloads.tls.hashOk && t.downloads.plain.hashOk : undefined,
    ],
    [
      `tracker requests over TLS ≥ 70% of plain, ${t.requests?.connections ?? '?'} connections`,
      t.requests ? pctOf(t.requests.ratio) : 'not measured',
      t.requests ? t.requests.ratio >= 0.7 && t.requests.tls.errors === 0 : undefined,
    ],
  ];
}

module.exports = { name: 'tls', config, run, markdown, targets };
