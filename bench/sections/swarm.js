// Swarm: one seeder and N downloaders started together, every client's upload capped at the same rate U, all
// downloading one file of F bytes at once; the time until the last downloader holds a verified copy against the
// lower bound max(F/U, N·F/((N+1)·U)), with partial seeding on (the default) and off (--no-partial-seeding).
const { mkdirSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { cpuSeconds, freePort, randomFile } = require('../../scripts/lib/procs');
const {
  MB,
  MiB,
  PASSWORD,
  hrSeconds,
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
} = require('../lib/runtime');
const { fmt } = require('../lib/numbers');

const config = {
  swarmN: num('BENCH_SWARM_N', 8, 4),
  swarmMb: num('BENCH_SWARM_MB', 128, 16),
  swarmMBps: num('BENCH_SWARM_RATE', 8, 8),
};

/** The last downloader done within this many times the lower bound, partial seeding on. */
const TARGET_RATIO = 1.25;
const OFF_FLAG = '--no-partial-seeding';

/** Throws on settings this section cannot run with (the runner checks before anything starts). */
function validate(cfg) {
  const env = (name) => process.env[name] ?? 'its default';
  if (!Number.isInteger(cfg.swarmN) || cfg.swarmN < 1)
    throw new Error(`BENCH_SWARM_N=${env('BENCH_SWARM_N')} is not a whole number of downloaders (1 or more)`);
  if (!Number.isInteger(cfg.swarmMb) || cfg.swarmMb < 1)
    throw new Error(`BENCH_SWARM_MB=${env('BENCH_SWARM_MB')} is not a whole number of MiB (1 or more)`);
  if (!(cfg.swarmMBps > 0) || !Number.isFinite(cfg.swarmMBps))
    throw new Error(`BENCH_SWARM_RATE=${env('BENCH_SWARM_RATE')} is not a rate in MB/s above 0`);
}

async function run({ cfg, results }) {
  const n = cfg.swarmN;
  const dir = sectionDir('swarm');
  const size = cfg.swarmMb * MiB;
  const rate = Math.round(cfg.swarmMBps * MB);
  const file = join(dir, 'swarm.bin');
  say(
    `swarm: 1 seeder and ${n} downloaders of a ${cfg.swarmMb} MiB file, every client's upload capped at ${cfg.swarmMBps} MB/s`,
  );
  randomFile(file, cfg.swarmMb);
  settleDisk();
  const { hash } = sha1sumOf(file);
  const boundSeconds = Math.max(size / rate, (n * size) / ((n + 1) * rate));
  const out = { downloaders: n, fileMiB: cfg.swarmMb, uploadLimitMBps: cfg.swarmMBps, boundSeconds };
  results.swarm = out;
  const failures = [];
  for (const mode of ['on', 'off']) {
    try {
      out[mode] = await swarmRun(dir, mode, mode === 'off' ? [OFF_FLAG] : [], { n, rate, file, hash, boundSeconds });
    } catch (err) {
      // the other run still goes; the section is reported as failed at the end
      failures.push(`partial seeding ${mode}: ${err.message.split('\n')[0]}`);
      out[mode] = { measured: false, reason: `failed: ${err.message.split('\n')[0]}` };
    }
    const r = out[mode];
    say(
      r.measured
        ? `  partial seeding ${mode}: last done after ${r.lastDoneSeconds.toFixed(1)} s = ${fmt(r.ofBound)}× the bound ` +
            `(${boundSeconds.toFixed(1)} s); copies ${r.copiesOk} of ${n} byte-exact`
        : `  partial seeding ${mode}: ${r.reason}`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
  if (failures.length) throw new Error(failures.join('; '));
}

/** One swarm on a tracker of its own: set up, then every download_file at once; done when the last one is. */
async function swarmRun(dir, mode, flags, { n, rate, file, hash, boundSeconds }) {
  const runDir = join(dir, mode);
  mkdirSync(runDir);
  const port = await freePort();
  const info = join(runDir, 'tracker_info.txt');
  writeFileSync(info, `127.0.0.1:${port}\n`);
  const tracker = await startTracker(runDir, info, 1, `swarm-${mode}-tracker`);
  const names = ['seed', ...Array.from({ length: n }, (_, i) => `peer${i + 1}`)];
  const clients = [];
  try {
    await setupGroup(port, 'swarm', names);
    for (const name of names)
      clients.push(
        await startClient(runDir, name, info, `swarm-${mode}-${name}`, ['--upload-limit', String(rate), ...flags]),
      );
    try {
      await Promise.all(clients.map((p, i) => p.run(`login ${names[i]} ${PASSWORD}`, /logged in as \S+\n/)));
    } catch (err) {
      // a client without the flag refuses it and exits: the run is reported as not measured
      const refused = flags.length && clients.find((p) => /unknown option/i.test(p.out));
      if (!refused) throw err;
      const why = /[^\n;]*unknown option[^\n;]*/i.exec(refused.out)[0].trim();
      return { measured: false, reason: `not measured: the client refuses ${flags.join(' ')} ("${why}")` };
    }
    const [seed, ...peers] = clients;
    const shared = await seed.run(`upload_file swarm ${file}`, /shared swarm\.bin.*\n|error:.*\n/);
    if (shared.includes('error:')) throw new Error(`the seeder could not share the file: ${shared}`);

    // the clock: every downloader gets download_file at once
    const timeoutMs = Math.max(120_000, 3 * (n + 1) * boundSeconds * 1000);
    const cpu0 = clients.map((p) => cpuSeconds(p.child.pid));
    for (const p of peers) p.mark = p.out.length;
    const from = process.hrtime.bigint();
    for (const p of peers) p.child.stdin.write('download_file swarm swarm.bin copy.bin\n');
    const finished = await Promise.all(
      peers.map(async (p) => {
        const text = await p.waitFor(/downloaded .*\n|error:.*\n/, timeoutMs);
        return { seconds: hrSeconds(from), line: /(?:downloaded|error:).*/.exec(text)[0] };
      }),
    );
    const clientsCpuSeconds = clients.reduce((sum, p, i) => sum + (cpuSeconds(p.child.pid) - cpu0[i]), 0);
    const failed = finished.findIndex((f) => !f.line.startsWith('downloaded'));
    if (failed >= 0) throw new Error(`${names[failed + 1]}: ${finished[failed].line}`);

    const downloaders = peers.map((p, i) => ({
      name: names[i + 1],
      seconds: +finished[i].seconds.toFixed(2),
      chunksFrom: chunkSources(finished[i].line),
      hashOk: sha1sumOf(join(p.cwd, 'copy.bin')).hash === hash,
      summary: finished[i].line,
    }));
    const lastDoneSeconds = Math.max(...downloaders.map((d) => d.seconds));
    return {
      measured: true,
      lastDoneSeconds,
      firstDoneSeconds: Math.min(...downloaders.map((d) => d.seconds)),
      ofBound: lastDoneSeconds / boundSeconds,
      copiesOk: downloaders.filter((d) => d.hashOk).length,
      chunksFromPeers: downloaders.reduce(
        (sum, d) => sum + Object.entries(d.chunksFrom ?? {}).reduce((s, [who, k]) => (who === 'seed' ? s : s + k), 0),
        0,
      ),
      clientsCpuSeconds: +clientsCpuSeconds.toFixed(2),
      downloaders,
    };
  } finally {
    await Promise.all(clients.map((p) => stopProc(p)));
    await stopServer(tracker);
    rmSync(runDir, { recursive: true, force: true });
  }
}

/** `chunks from alice 12, bob 30` of a completion line as { alice: 12, bob: 30 }; undefined if it does not say. */
function chunkSources(line) {
  const m = /chunks from ([^;]*)/.exec(line);
  if (!m) return undefined;
  const from = {};
  for (const part of m[1].split(', ')) {
    const p = /^(\S+) (\d+)$/.exec(part.trim());
    if (p) from[p[1]] = Number(p[2]);
  }
  return Object.keys(from).length ? from : undefined;
}

const sources = (d) =>
  d?.chunksFrom
    ? Object.entries(d.chunksFrom)
        .map(([who, k]) => `${who} ${k}`)
        .join(', ')
    : '';

function markdown(results) {
  const out = [];
  const s = results.swarm;
  if (!s) return out;
  const n = s.downloaders;
  out.push(
    `## Swarm (1 seeder and ${n} downloaders at once, ${s.fileMiB} MiB file, every client's upload capped at ` +
      `${s.uploadLimitMBps} MB/s; 127.0.0.1)`,
    '',
  );
  out.push(
    "Every client is a real client process with `--upload-limit`; users, group, the seeder's upload_file and every " +
      'login are done before the clock starts. Then every downloader gets download_file at once; the time is until ' +
      'the last one printed its `downloaded ... SHA-1 verified` line, and every copy is checked against the ' +
      `source's SHA-1 after. The lower bound max(F/U, N·F/((N+1)·U)) is ${s.boundSeconds.toFixed(1)} s: the seeder ` +
      'must send every byte at least once at U, and the N downloaders must receive N·F through the (N+1)·U of ' +
      `upload the swarm has. "off": every client started with \`${OFF_FLAG}\` (a downloader serves the file only ` +
      `once it holds all of it). Target: on, the last downloader done within ${TARGET_RATIO}× the bound.`,
    '',
  );
  out.push(
    '| partial seeding | last done s | first done s | lower bound s | last done / bound | chunks from other downloaders | clients CPU s | copies byte-exact |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const mode of ['on', 'off']) {
    const r = s[mode];
    if (!r) continue;
    if (!r.measured) {
      out.push(`| ${mode} | ${r.reason} | | | | | | |`);
      continue;
    }
    out.push(
      `| ${mode} | ${r.lastDoneSeconds.toFixed(1)} | ${r.firstDoneSeconds.toFixed(1)} | ${s.boundSeconds.toFixed(1)} | ` +
        `${fmt(r.ofBound)}× | ${r.chunksFromPeers} | ${r.clientsCpuSeconds.toFixed(1)} | ${r.copiesOk} of ${n} |`,
    );
  }
  const on = s.on?.measured ? s.on : undefined;
  const off = s.off?.measured ? s.off : undefined;
  if (on || off) {
    out.push(
      '',
      '| downloader | on: done s | on: chunks from | off: done s | off: chunks from |',
      '|---|---|---|---|---|',
    );
    const rows = (on ?? off).downloaders;
    for (const [i, d] of rows.entries()) {
      const a = on?.downloaders[i];
      const b = off?.downloaders[i];
      out.push(
        `| ${d.name} | ${a ? a.seconds.toFixed(1) : ''} | ${sources(a)} | ${b ? b.seconds.toFixed(1) : ''} | ${sources(b)} |`,
      );
    }
  }
  out.push('');
  return out;
}

function targets(results) {
  const s = results.swarm;
  if (!s) return [];
  const on = s.on?.measured ? s.on : undefined;
  const off = s.off?.measured ? s.off : undefined;
  const measured = [on, off].filter(Boolean);
  return [
    [
      `swarm of ${s.downloaders}: last downloader done within ${TARGET_RATIO}× the lower bound (partial seeding on)`,
      on
        ? `${fmt(on.ofBound)}× (${on.lastDoneSeconds.toFixed(1)} s vs ${s.boundSeconds.toFixed(1)} s); ` +
          `off: ${off ? `${fmt(off.ofBound)}×` : 'not measured'}`
        : 'not measured',
      on ? on.ofBound <= TARGET_RATIO : undefined,
    ],
    [
      'every swarm copy byte-exact',
      measured.length
        ? `${measured.reduce((k, r) => k + r.copiesOk, 0)} of ${measured.length * s.downloaders}`
        : 'none',
      measured.length ? measured.every((r) => r.copiesOk === s.downloaders) : undefined,
    ],
  ];
}

module.exports = { name: 'swarm', config, validate, run, markdown, targets };
