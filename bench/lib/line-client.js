// A client of the tracker's line protocol for the benchmarks: requests may be pipelined on one connection; the
// replies (`OK <n> <message>` + n lines, or `ERR <CODE> <message>`) come back in order. A thin wrapper around the
// apps' own LineConnection (libs/line-client), compiled in dist/: no hand-written copy of the protocol here.
const { join } = require('node:path');

let lineClientLib;
/** Loaded on first use: the bench sets BENCH_DIST (its copy of dist/) before it connects anything. */
function lib() {
  const dist = process.env.BENCH_DIST ?? join(__dirname, '..', '..', 'dist');
  lineClientLib ??= require(join(dist, 'apps/tracker/libs/line-client/src'));
  return lineClientLib;
}

class LineClient {
  /** Connects to `host:port`; rejects after `timeoutMs`. */
  static async connect(host, port, timeoutMs = 10_000) {
    try {
      // HELLO first: trackers and our seeders then speak the extended form (framed replies, pipelining)
      return new LineClient(await lib().LineConnection.open({ host, port }, { timeoutMs, hello: true }));
    } catch (err) {
      throw new Error(`connect to ${host}:${port}: ${err.message}`);
    }
  }

  constructor(conn) {
    this.conn = conn;
  }

  /** The error the connection ended with, if it has. */
  get closed() {
    return this.conn.error;
  }

  /**
   * Sends one request (plus continuation lines) and resolves with
   * `{ ok, count, message, lines, bytes }` or, for `ERR` (which resolves too), `{ ok: false, code, message, lines: [], bytes }`.
   */
  async request(line, continuation = []) {
    const reply = await this.conn.request(line, continuation);
    return reply.ok ? { ...reply, count: reply.lines.length } : { ...reply, lines: [] };
  }

  /** Like `request`, but rejects on `ERR`. */
  async ok(line, continuation) {
    const reply = await this.request(line, continuation);
    if (!reply.ok) throw new Error(`${line.slice(0, 60)}: ERR ${reply.code} ${reply.message}`);
    return reply;
  }

  close() {
    this.conn.close();
  }
}

/** Runs `requests` (an array of lines) pipelined, at most `window` outstanding; resolves with the replies. */
async function pipeline(client, requests, window = 64) {
  const replies = new Array(requests.length);
  let next = 0;
  const lane = async () => {
    while (next < requests.length) {
      const i = next++;
      const r = requests[i];
      replies[i] = await (typeof r === 'string' ? client.request(r) : client.request(r.line, r.continuation));
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, requests.length) }, lane));
  return replies;
}

module.exports = { LineClient, pipeline };
