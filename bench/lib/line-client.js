// A bare client of the tracker's line protocol for the benchmarks: requests may be pipelined on one connection; the
// replies (`OK <n> <message>` + n lines, or `ERR <CODE> <message>`) come back in order. No Nest, no app code.
const net = require('node:net');

const OK = /^OK (\d+) ?(.*)$/;
const ERR = /^ERR (\S+) ?(.*)$/;

class LineClient {
  /** Connects to `host:port`; rejects after `timeoutMs`. */
  static connect(host, port, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new LineClient(socket));
      });
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.socket.setNoDelay(true);
    /** Requests sent and not yet answered, oldest first. */
    this.waiting = [];
    this.current = undefined;
    this.partial = [];
    this.closed = undefined;
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  /**
   * Sends one request (plus continuation lines) and resolves with
   * `{ ok, code, message, lines, bytes }`; `ERR` replies resolve too (ok false).
   */
  request(line, continuation = []) {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(continuation.length ? `${line}\n${continuation.join('\n')}\n` : `${line}\n`);
    });
  }

  /** Like `request`, but rejects on `ERR`. */
  async ok(line, continuation) {
    const reply = await this.request(line, continuation);
    if (!reply.ok) throw new Error(`${line.slice(0, 60)}: ERR ${reply.code} ${reply.message}`);
    return reply;
  }

  close() {
    this.socket.destroy();
  }

  /** Splits on newlines without re-scanning or re-copying a long partial line (a reply line may be megabytes). */
  onData(chunk) {
    let at = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, at);
      if (nl < 0) break;
      const piece = chunk.subarray(at, nl);
      const whole = this.partial.length ? Buffer.concat([...this.partial, piece]) : piece;
      this.partial = [];
      const end = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.length - 1 : whole.length;
      this.onLine(whole.toString('utf8', 0, end), whole.length + 1);
      if (this.closed) return;
      at = nl + 1;
    }
    if (at < chunk.length) this.partial.push(chunk.subarray(at));
  }

  onLine(line, bytes) {
    const cur = this.current;
    if (cur) {
      cur.lines.push(line);
      cur.bytes += bytes;
      if (cur.lines.length === cur.count) this.settle(cur);
      return;
    }
    const ok = OK.exec(line);
    if (ok) {
      const reply = { ok: true, count: Number(ok[1]), message: ok[2], lines: [], bytes };
      if (reply.count === 0) this.settle(reply);
      else this.current = reply;
      return;
    }
    const err = ERR.exec(line);
    if (err) return this.settle({ ok: false, code: err[1], message: err[2], lines: [], bytes });
    this.fail(new Error(`not a reply: ${line.slice(0, 80)}`));
  }

  settle(reply) {
    this.current = undefined;
    const w = this.waiting.shift();
    if (!w) return this.fail(new Error('a reply with no request'));
    w.resolve(reply);
  }

  fail(err) {
    if (this.closed) return;
    this.closed = err;
    this.socket.destroy();
    for (const w of this.waiting.splice(0)) w.reject(err);
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
