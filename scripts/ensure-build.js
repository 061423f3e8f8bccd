#!/usr/bin/env node
// Builds both apps when dist/ is missing or older than any source file.
const { execFileSync } = require('node:child_process');
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const outputs = ['dist/apps/tracker/apps/tracker/src/main.js', 'dist/apps/client/apps/client/src/main.js'].map((p) =>
  join(root, p),
);

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function needsBuild() {
  if (!outputs.every(existsSync)) return true;
  const built = Math.min(...outputs.map((p) => statSync(p).mtimeMs));
  return ['apps', 'libs'].some((d) => newestSource(join(root, d)) > built);
}

function ensureBuild() {
  if (!needsBuild()) return;
  process.stderr.write('building tracker and client...\n');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}

module.exports = { ensureBuild, root };
if (require.main === module) ensureBuild();
