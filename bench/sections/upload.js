// upload_file of the transfer file against bare Node hashing (one thread, two processes at once) and sha1sum, in
// interleaved rounds; meanwhile a probe checks that the uploading client's chunk server stays responsive.
const { join } = require('node:path');
const { rmSync } = require('node:fs');
const { cpuSeconds, peakRss, randomFile, resetPeakRss } = require('../../scripts/lib/procs');
const { LineClient } = require('../lib/line-client');
const { MB, hrSeconds, runNodeScript, say, settleDisk, sleep } = require('../lib/runtime');
const { fmt, mb, median, minMax, pctOf, summarize } = require('../lib/numbers');
const transfer = require('../lib/transfer-fixture');

async function run({ cfg, results, fixture }) {
  const fx = await fixture(transfer);
  // the first seeder's upload is the measured one
  await fx.shareAll(async (p) => {
    results.upload = await measureUpload(cfg, p, fx.file, fx.size, results.references);
  });
  const u = results.upload;
  say(
    `  upload_file (median of ${u.rounds.length}): ${fmt(u.MBps)} MB/s (${u.seconds.toFixed(2)} s, CPU ` +
      `${u.cpuSeconds.toFixed(2)} s, peak RSS ${u.peakRssMB} MB) = ${pctOf(u.vsNodeChunkHash)} of bare chunk hashing, ` +
      `${pctOf(u.vsNodeHashPair)} of two bare hashers at once; chunk server probe p99 ${fmt(u.probe.p99Ms)} ms, ` +
      `max ${fmt(u.probe.maxMs)} ms; unmeasured warm-up upload of 32 MiB before them ${u.warmupSeconds.toFixed(2)} s`,
  );
}

/**
 * Times `upload_file` of the first seeder, and meanwhile checks that its process stays responsive: a probe sends
 * `GET_CHUNK 0 /nonexistent` to its chunk server every 20 ms and times the `ERR` answer.
 */
async function measureUpload(cfg, p, file, size, refs) {
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
  for (let round = 1; round <= cfg.rounds; round++) {
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

function markdown(results) {
  const out = [];
  const u = results.upload;
  if (!u) return out;
  const refs = results.references;
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
  return out;
}

function targets(results) {
  const u = results.upload;
  if (!u) return [];
  return [
    ['upload_file ≥ 90% of bare Node chunk hashing', pctOf(u.vsNodeChunkHash), u.vsNodeChunkHash >= 0.9],
    ['upload_file well ahead of sha1sum', `${pctOf(u.vsSha1sum)} of sha1sum`, u.vsSha1sum >= 1.1],
    ['shell responsive while hashing (probe p99 < 20 ms)', `${fmt(u.probe.p99Ms)} ms`, u.probe.p99Ms < 20],
  ];
}

module.exports = { name: 'upload', config: {}, uses: [transfer], run, markdown, targets };
