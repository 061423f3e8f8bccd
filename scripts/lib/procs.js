// Helpers shared by the demo and the benchmarks: child processes driven through stdin, ports, files, hashes.
const { spawn } = require('node:child_process');
const { createHash, randomBytes } = require('node:crypto');
const { closeSync, createReadStream, openSync, writeSync } = require('node:fs');
const net = require('node:net');
const { join } = require('node:path');

const root = join(__dirname, '..', '..');
const TRACKER = join(root, 'dist/apps/tracker/apps/tracker/src/main.js');
const CLIENT = join(root, 'dist/apps/client/apps/client/src/main.js');

/** A child process whose stdout and stderr are collected; `waitFor` consumes output up to a match. */
class Proc {
  constructor(name, command, args, cwd, env = undefined) {
    this.name = name;
    this.out = '';
    this.mark = 0;
    this.child = spawn(command, args, { cwd, env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (d) => (this.out += d));
    this.child.stderr.setEncoding('utf8').on('data', (d) => (this.out += d));
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  async waitFor(pattern, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = this.out.slice(this.mark);
      const m = pattern.exec(seen);
      if (m) {
        this.mark += m.index + m[0].length;
        return seen.slice(0, m.index + m[0].length);
      }
      if (this.child.exitCode !== null) throw new Error(`${this.name} exited:\n${this.out}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${pattern} in time; output:\n${seen}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Sends one line and waits for the answer matching `pattern`. */
  async run(line, pattern) {
    this.mark = this.out.length;
    this.child.stdin.write(line + '\n');
    return (await this.waitFor(pattern)).trimEnd();
  }
}

const portFree = (port) =>
  new Promise((resolve) => {
    const srv = net.createServer().once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

const freePort = () =>
  new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

const sha1File = (path) =>
  new Promise((resolve, reject) => {
    const h = createHash('sha1');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });

function randomFile(path, mebibytes) {
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mebibytes; i++) writeSync(fd, randomBytes(1024 * 1024));
  } finally {
    closeSync(fd);
  }
}

/** Peak resident set (VmHWM) of a running process, in bytes; undefined once it is gone. */
function peakRss(pid) {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Current resident set (VmRSS) of a running process, in bytes; undefined once it is gone. */
function currentRss(pid) {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

/** CPU time (user + system) a running process has used so far, in seconds; undefined once it is gone. */
function cpuSeconds(pid) {
  try {
    const stat = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may hold spaces: fields count from after its closing parenthesis
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Resets a process's peak resident set (VmHWM) to its current RSS; false where the kernel does not allow it. */
function resetPeakRss(pid) {
  try {
    require('node:fs').writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

module.exports = {
  Proc,
  TRACKER,
  CLIENT,
  root,
  portFree,
  freePort,
  sha1File,
  randomFile,
  peakRss,
  currentRss,
  cpuSeconds,
  resetPeakRss,
};
