// Closed-loop load over already-open LineClients: each connection keeps exactly one request outstanding for
// `seconds`, then stops; requests still unanswered after the window get `graceMs` more and are then counted as
// timeouts. Latency is measured from the write to the last byte of the reply.

/** `requestFor(conn, n)` gives connection `conn`'s n-th request line. */
async function closedLoop(clients, requestFor, { seconds, graceMs = 5_000 }) {
  const latencies = new Float64Array(4_000_000);
  let count = 0;
  let errReplies = 0;
  let failures = 0;
  let timeouts = 0;
  const codes = {};
  let bytes = 0;
  const start = process.hrtime.bigint();
  const endAt = start + BigInt(Math.round(seconds * 1e9));
  let stopped = false;

  const lane = async (client, conn) => {
    for (let n = 0; !stopped && process.hrtime.bigint() < endAt; n++) {
      const t0 = process.hrtime.bigint();
      let reply;
      try {
        reply = await client.request(requestFor(conn, n));
      } catch {
        failures++;
        return;
      }
      if (stopped) return;
      const t1 = process.hrtime.bigint();
      if (count < latencies.length) latencies[count] = Number(t1 - t0) / 1e6;
      count++;
      bytes += reply.bytes;
      if (!reply.ok) {
        errReplies++;
        codes[reply.code] = (codes[reply.code] ?? 0) + 1;
      }
    }
  };
  const lanes = clients.map((c, i) => lane(c, i));
  const window = new Promise((r) => setTimeout(r, seconds * 1000 + graceMs));
  const settled = await Promise.race([Promise.all(lanes).then(() => true), window.then(() => false)]);
  stopped = true;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  if (!settled) timeouts = clients.filter((c) => c.waiting.length > 0).length;
  const sample = latencies.subarray(0, Math.min(count, latencies.length)).sort();
  const pct = (p) => (sample.length ? sample[Math.min(sample.length - 1, Math.floor(p * sample.length))] : NaN);
  return {
    connections: clients.length,
    seconds: Math.min(elapsed, seconds),
    requests: count,
    rps: count / Math.max(seconds, 1e-9),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxMs: sample.length ? sample[sample.length - 1] : NaN,
    errReplies,
    errCodes: codes,
    failures,
    timeouts,
    replyBytes: bytes,
  };
}

/** Latency of `times` sequential requests on one connection: { p50Ms, maxMs, minMs, bytes }. */
async function sequentialLatency(client, line, times, continuation) {
  const ms = [];
  let bytes = 0;
  let last;
  for (let i = 0; i < times; i++) {
    const t0 = process.hrtime.bigint();
    last = await client.request(line, continuation);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (!last.ok) throw new Error(`${line.slice(0, 60)}: ERR ${last.code} ${last.message}`);
    bytes = last.bytes;
  }
  ms.sort((a, b) => a - b);
  return { p50Ms: ms[Math.floor(ms.length / 2)], minMs: ms[0], maxMs: ms[ms.length - 1], bytes, runs: times, last };
}

module.exports = { closedLoop, sequentialLatency };
