#!/usr/bin/env node
// `npm run bench`: throughput, hashing, tracker load and scale, each beside a bare reference measured in the same
// run, and a swarm of downloaders against its lower bound, on 127.0.0.1 only. Prints Markdown tables and writes
// bench/results/bench.{json,md} and bench/results/throughput.svg. Every child process and temp folder is removed at
// the end, also on failure.
//
// Each section is a module of bench/sections/ exporting { name, config, run(ctx), markdown(results),
// targets(results) } (and optionally validate(cfg), uses, runsAfter, files(results)); a new section is a new file
// plus one line in SECTIONS below.
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
//   BENCH_SWARM_N=8               downloaders of the swarm, all at once from one seeder (quick: 4)
//   BENCH_SWARM_MB=128            the swarm's file, MiB (quick: 16)
//   BENCH_SWARM_RATE=8            every swarm client's upload cap, MB/s (10^6 bytes a second)
//   BENCH_TLS_MB=256              the file of the tls section, downloaded over TLS and in clear (quick: 32)
//   BENCH_TLS_ROUNDS=5            rounds of the tls section's two downloads, interleaved (quick: 1)
//   BENCH_TLS_CONNS=50            tracker connections of each kind (in clear, over TLS) in the tls section
//   BENCH_TLS_SECONDS=3           length of each of its eight closed-loop windows
//   BENCH_SECTIONS=download,upload,tracker,scale,swarm,tls
//   BENCH_CPU_PROF=<dir>          run the clients and trackers with --cpu-prof into <dir>
//   BENCH_RESULTS=<dir>           where results go (default bench/results)
//   BENCH_TMP=<dir>               where the run's work dir goes (default the system's temp dir)
const { mkdirSync, mkdtempSync, writeFileSync } = require('node:fs');
const { tmpdir, cpus, totalmem } = require('node:os');
const { join } = require('node:path');
const { ensureBuild } = require('../scripts/ensure-build');
const { root } = require('../scripts/lib/procs');
const runtime = require('./lib/runtime');
const { check } = require('./lib/numbers');

const { say, list } = runtime;

/** Every section, in the order of the report; each runs after the ones its `runsAfter` names (when selected). */
const SECTIONS = [
  require('./sections/download'),
  require('./sections/upload'),
  require('./sections/tracker'),
  require('./sections/scale'),
  require('./sections/swarm'),
  require('./sections/tls'),
];

const ALL = SECTIONS.map((s) => s.name).join(',');
const CFG = {
  ...Object.assign({}, ...SECTIONS.map((s) => s.config)),
  sections: new Set(list('BENCH_SECTIONS', ALL, ALL)),
  cpuProf: runtime.cpuProf,
  resultsDir: process.env.BENCH_RESULTS ?? join(root, 'bench', 'results'),
};

/** Bad settings: reported in one line, before anything starts. */
class UsageError extends Error {}

/** The selected sections in the order they run: each after the selected sections it names in `runsAfter`. */
function runOrder() {
  const unknown = [...CFG.sections].filter((name) => !SECTIONS.some((s) => s.name === name));
  if (unknown.length) throw new UsageError(`BENCH_SECTIONS: no section ${unknown.join(', ')} (there are ${ALL})`);
  const selected = SECTIONS.filter((s) => CFG.sections.has(s.name));
  const order = [];
  const visit = (s) => {
    if (order.includes(s)) return;
    for (const name of s.runsAfter ?? []) {
      const before = selected.find((x) => x.name === name);
      if (before) visit(before);
    }
    order.push(s);
  };
  selected.forEach(visit);
  for (const s of order) {
    try {
      s.validate?.(CFG);
    } catch (err) {
      throw new UsageError(err.message);
    }
  }
  return order;
}

/**
 * Opens what sections share (`uses`: fixtures with { name, open(ctx), close(value) }) on first use and closes each
 * once no section left to run uses it.
 */
class Fixtures {
  constructor() {
    this.open = new Map();
  }

  async get(fixture, ctx) {
    if (!this.open.has(fixture.name)) this.open.set(fixture.name, { fixture, value: fixture.open(ctx) });
    return this.open.get(fixture.name).value;
  }

  /** Closes every open fixture that none of `remaining` uses. */
  async release(remaining) {
    for (const [name, { fixture, value }] of this.open) {
      if (remaining.some((s) => (s.uses ?? []).some((f) => f.name === name))) continue;
      this.open.delete(name);
      await fixture.close(await value);
    }
  }

  /** After a failure: forgets them all (their processes are killed already). */
  drop() {
    this.open.clear();
  }
}

function markdown(results) {
  const out = [];
  const m = results.machine;
  out.push(`# p2p-share benchmark (${results.startedAt})`, '');
  out.push(`${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, Node ${m.node}; sizes: ${JSON.stringify(results.config)}`, '');
  for (const s of SECTIONS) out.push(...s.markdown(results));
  out.push('## Targets', '');
  out.push('| target | result | |', '|---|---|---|');
  for (const [what, value, ok] of SECTIONS.flatMap((s) => s.targets(results)))
    out.push(`| ${what} | ${value} | ${ok === undefined ? 'not measured' : check(ok)} |`);
  if (results.errors.length) out.push('', '## Errors', '', ...results.errors.map((e) => `- ${e}`));
  return out.join('\n') + '\n';
}

function writeResults(results) {
  mkdirSync(CFG.resultsDir, { recursive: true });
  const md = markdown(results);
  writeFileSync(join(CFG.resultsDir, 'bench.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(CFG.resultsDir, 'bench.md'), md);
  for (const s of SECTIONS)
    for (const [name, text] of Object.entries(s.files?.(results) ?? {}))
      writeFileSync(join(CFG.resultsDir, name), text);
  process.stdout.write('\n' + md);
  say(`results in ${CFG.resultsDir}`);
}

async function main() {
  const sections = runOrder();
  ensureBuild();
  runtime.setWorkDir(mkdtempSync(join(process.env.BENCH_TMP ?? tmpdir(), 'p2p-bench-')));
  runtime.snapshotDist();
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
  const fixtures = new Fixtures();
  const ctx = { cfg: CFG, results };
  ctx.fixture = (f) => fixtures.get(f, ctx);
  for (const [i, section] of sections.entries()) {
    try {
      await section.run(ctx);
      await fixtures.release(sections.slice(i + 1));
    } catch (err) {
      results.errors.push(`${section.name}: ${err.message.split('\n')[0]}`);
      say(`${section.name} failed: ${err.stack}`);
      runtime.killChildren();
      fixtures.drop();
    }
  }
  results.totalSeconds = (Date.now() - runtime.t0) / 1000;
  writeResults(results);
  process.exitCode = results.errors.length ? 1 : 0;
}

process.on('SIGINT', () => runtime.cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => runtime.cleanup().then(() => process.exit(143)));
main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${err instanceof UsageError ? err.message : err.stack}\n`);
    process.exitCode = 1;
  })
  .finally(() => runtime.cleanup());
