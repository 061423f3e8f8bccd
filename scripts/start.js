#!/usr/bin/env node
// `npm start`: builds if needed, then runs every tracker listed in tracker_info.txt (or the file given) until Ctrl-C.
const { spawn } = require('node:child_process');
const { readFileSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { ensureBuild, root } = require('./ensure-build');

const infoFile = resolve(process.argv[2] ?? join(root, 'tracker_info.txt'));
ensureBuild();

const lines = readFileSync(infoFile, 'utf8')
  .split(/\r?\n/)
  .map((l) => l.replace(/#.*$/, '').trim())
  .filter(Boolean);
const trackerMain = join(root, 'dist/apps/tracker/apps/tracker/src/main.js');
const children = lines.map((addr, i) => {
  const n = i + 1;
  // the trackers' lines are shown prefixed, to a person: text, unless TRACKER_LOG_FORMAT says otherwise
  const env = { TRACKER_LOG_FORMAT: 'text', ...process.env };
  const child = spawn(process.execPath, [trackerMain, infoFile, String(n)], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const prefix = `[tracker ${n}] `;
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.setEncoding('utf8').on('data', (d) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop();
      for (const p of parts) process.stdout.write(prefix + p + '\n');
    });
  }
  child.on('exit', (code, signal) => process.stdout.write(`${prefix}exited (${signal ?? code})\n`));
  return child;
});
process.stdout.write(
  `started ${children.length} tracker(s) from ${infoFile}; in another terminal: npm run client -- 127.0.0.1:7001 tracker_info.txt\n`,
);
const stop = () => {
  children.forEach((c) => c.kill('SIGTERM'));
  setTimeout(() => process.exit(0), 500);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
