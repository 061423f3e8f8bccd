import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  eventually,
  freePort,
  Proc,
  removeDir,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

const MB = 1024 * 1024;
const CHUNK = 512 * 1024;
/** 40 MiB: 80 chunks; at the seeder's upload limit a download lasts about 10 s, long enough to interrupt midway. */
const FILE_BYTES = 40 * MB;
const CHUNKS = FILE_BYTES / CHUNK;
const SEED_LIMIT = '4M';
/**
 * What a seeder writes beyond the chunks fetched: replies, tracker requests, and the chunks it was still sending to
 * the client that was stopped (paced by the upload limit, they may be written after it is gone). Far fewer than
 * the chunks resumed, which the checks below require to be at least a quarter of the file.
 */
const SLACK_CHUNKS = 4;

/** The distinct chunks a `<dest>.part.chunks` record lists, read as the client does: up to a torn tail. */
function recorded(destPath: string): number[] {
  const path = `${destPath}.part.chunks`;
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'latin1').split('\n');
  const chunks = new Set<number>();
  // the header first; the last piece is empty or a torn entry
  for (const line of lines.slice(1, -1)) {
    if (!/^\d+$/.test(line)) break;
    chunks.add(Number(line));
  }
  return [...chunks];
}

/** Bytes a process has written to files and sockets so far (Linux): what a seeder sent, counted by the kernel. */
function bytesWritten(proc: Proc): number {
  const io = readFileSync(`/proc/${proc.child.pid}/io`, 'utf8');
  return Number(/^wchar: (\d+)$/m.exec(io)![1]);
}

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => eventually(check, timeoutMs);

/**
 * Interrupted downloads continue where they stopped, between real processes: a seeder client (sam, upload-limited
 * so that a transfer can be interrupted midway), a downloader client (dora) and a tracker. Fetched chunks are
 * counted by the downloader's summary and, independently, by the bytes the seeder process wrote.
 */
describe('resuming interrupted downloads', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let sam: ClientPeer;
  let dora: ClientPeer;

  const start = (name: string, port: number): ClientPeer =>
    startClientIn(net.dir, net.infoFile, name, port, ['--upload-limit', SEED_LIMIT]);

  /** Starts a client again on the same address and data folder. */
  const restart = (peer: ClientPeer): ClientPeer => start(peer.name, peer.port);

  /** A new file at sam's, shared with the group. */
  async function shared(fileName: string): Promise<string> {
    const path = join(sam.dir, fileName);
    randomFile(path, FILE_BYTES);
    await sam.proc.run(`upload_file team ${fileName}`, new RegExp(`shared ${fileName.replace('.', '\\.')}`), 60_000);
    return path;
  }

  /** Starts dora's download of `fileName` and waits until its record lists at least `chunks` chunks. */
  async function downloadUntil(fileName: string, chunks: number): Promise<string> {
    const dest = join(dora.dir, fileName);
    await dora.proc.run(`download_file team ${fileName} ${fileName}`, /downloading .* from 1 seeder/);
    await waitUntil(() => recorded(dest).length >= chunks);
    expect(existsSync(dest)).toBe(false);
    return dest;
  }

  /** Parses a completion line: chunks resumed from the .part, fetched, and taken from sam. */
  /**
   * The end-of-download line `done` says every one of the `recorded` chunks passed its check again and only the
   * others came over the network, all from sam; and sam's own count agrees: it wrote `sent` bytes, the missing
   * chunks and not the ones resumed.
   */
  function expectOnlyMissingFetched(done: string, recorded: number, sent: number): void {
    const m = new RegExp(`resumed (\\d+) of ${CHUNKS} chunks from .*\\.part, fetched (\\d+)`).exec(done);
    const from = /chunks from sam (\d+)/.exec(done);
    expect(m).not.toBeNull();
    expect(from).not.toBeNull();
    const [resumed, fetched, fromSam] = [Number(m![1]), Number(m![2]), Number(from![1])];
    expect(resumed).toBe(recorded);
    expect(fetched).toBe(CHUNKS - recorded);
    expect(fromSam).toBe(fetched);
    expect(sent).toBeGreaterThanOrEqual(fetched * CHUNK);
    expect(sent).toBeLessThan((fetched + SLACK_CHUNKS) * CHUNK);
  }

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
    sam = start('sam', await freePort());
    dora = start('dora', await freePort());
    for (const [peer, name] of [
      [sam, 'sam'],
      [dora, 'dora'],
    ] as const) {
      await peer.proc.run(`create_user ${name} pw-${name}`, /created/);
      await peer.proc.run(`login ${name} pw-${name}`, /logged in/);
    }
    await sam.proc.run('create_group team', /created/);
    await dora.proc.run('join_group team', /asked to join/);
    await sam.proc.run('accept_request team dora', /now a member/);
  }, 60_000);

  /** Each test starts with both clients up and logged in, whatever the one before left. */
  beforeEach(async () => {
    for (const peer of [sam, dora]) {
      if (peer.proc.running) continue;
      const again = restart(peer);
      await again.proc.run(`login ${peer.name} pw-${peer.name}`, /logged in/);
      if (peer.name === 'sam') sam = again;
      else dora = again;
    }
  });

  afterAll(async () => {
    await Promise.all([sam.proc.stop('SIGKILL'), dora.proc.stop('SIGKILL'), tracker.stop('SIGKILL')]);
    removeDir(net.dir);
  });

  it('kill -9 of the downloader midway: after a restart and login it fetches only the missing chunks', async () => {
    const original = await shared('a.bin');
    const dest = await downloadUntil('a.bin', CHUNKS * 0.35);
    await dora.proc.stop('SIGKILL');
    const onDisk = recorded(dest);
    expect(onDisk.length).toBeLessThan(CHUNKS);
    expect(existsSync(`${dest}.part`)).toBe(true);

    dora = restart(dora);
    const sentBefore = bytesWritten(sam.proc);
    await dora.proc.run('login dora pw-dora', /logged in as dora/);
    expect(await dora.proc.waitFor(/downloading a\.bin .*/)).toMatch(
      new RegExp(`resuming the download of a\\.bin in group team to ${dest}\\n[^]*resuming from ${dest}\\.part`),
    );
    const done = await dora.proc.waitFor(/downloaded \[team\] a\.bin.*/, 60_000);
    const sent = bytesWritten(sam.proc) - sentBefore;

    expectOnlyMissingFetched(done, onDisk.length, sent);
    expect(await sha1File(dest)).toBe(await sha1File(original));
    expect(existsSync(`${dest}.part`) || existsSync(`${dest}.part.chunks`)).toBe(false);
  }, 120_000);

  it('Ctrl-C twice: the client quits and keeps the .part; the next login resumes it', async () => {
    const original = await shared('b.bin');
    const dest = await downloadUntil('b.bin', CHUNKS * 0.3);
    dora.proc.child.kill('SIGINT');
    await dora.proc.waitFor(/stopping 1 download; its \.part files stay and resume at the next login/);
    dora.proc.child.kill('SIGINT');
    // 130 from the client's own exit, or the signal itself if it had already stopped listening on its way out
    const { code, signal } = await dora.proc.exited;
    expect(code === 130 || signal === 'SIGINT').toBe(true);
    const onDisk = recorded(dest);
    expect(onDisk.length).toBeGreaterThanOrEqual(CHUNKS * 0.3);
    expect(onDisk.length).toBeLessThan(CHUNKS);
    expect(existsSync(`${dest}.part`)).toBe(true);

    dora = restart(dora);
    const sentBefore = bytesWritten(sam.proc);
    await dora.proc.run('login dora pw-dora', /logged in as dora/);
    const done = await dora.proc.waitFor(/downloaded \[team\] b\.bin.*/, 60_000);
    const sent = bytesWritten(sam.proc) - sentBefore;
    expectOnlyMissingFetched(done, onDisk.length, sent);
    expect(await sha1File(dest)).toBe(await sha1File(original));
  }, 120_000);

  it('the only seeder goes away: the .part stays, another file is refused there, and download_file resumes it', async () => {
    const original = await shared('c.bin');
    const dest = await downloadUntil('c.bin', CHUNKS * 0.3);
    await sam.proc.stop('SIGKILL');
    await dora.proc.run('cancel_download team c.bin', new RegExp(`kept ${dest}\\.part: download_file team c\\.bin`));
    const onDisk = recorded(dest);
    expect(onDisk.length).toBeLessThan(CHUNKS);
    const part = readFileSync(`${dest}.part`);
    const record = readFileSync(`${dest}.part.chunks`);

    sam = restart(sam);
    await sam.proc.run('login sam pw-sam', /seeding \d+ files? again/);
    // a .part of another file is refused, naming both, and left as it is
    await dora.proc.run(
      `download_file team a.bin ${dest}`,
      new RegExp(
        `^error: ${dest}\\.part belongs to another file \\(SHA-1 [0-9a-f]{40}, ${FILE_BYTES} bytes, ${CHUNKS} chunks ` +
          `of ${CHUNK}\\), not to a\\.bin \\(SHA-1 [0-9a-f]{40}, .*\\); not touching it`,
        'm',
      ),
    );
    expect(readFileSync(`${dest}.part`).equals(part)).toBe(true);
    expect(readFileSync(`${dest}.part.chunks`).equals(record)).toBe(true);
    await dora.proc.run(
      `download_file team c.bin c.bin`,
      new RegExp(`downloading c\\.bin .*, resuming from ${dest}\\.part \\(${onDisk.length} chunks recorded there\\)`),
    );
    const done = await dora.proc.waitFor(/downloaded \[team\] c\.bin.*/, 60_000);
    // the restarted seeder sent no more than the missing chunks
    expectOnlyMissingFetched(done, onDisk.length, bytesWritten(sam.proc));
    expect(await sha1File(dest)).toBe(await sha1File(original));
  }, 120_000);

  it('refuses a .part it has no record of, and cancel_download --discard deletes what it kept', async () => {
    const stranger = join(dora.dir, 'stranger.bin');
    writeFileSync(`${stranger}.part`, 'not ours');
    await dora.proc.run(
      `download_file team a.bin ${stranger}`,
      new RegExp(`^error: ${stranger}\\.part exists with no chunk record .*; not touching it: remove it`, 'm'),
    );
    expect(readFileSync(`${stranger}.part`, 'utf8')).toBe('not ours');

    await shared('d.bin');
    const dest = await downloadUntil('d.bin', 1);
    await dora.proc.run('cancel_download team d.bin --discard', /deleted .*d\.bin\.part and its chunk record/);
    expect(existsSync(`${dest}.part`) || existsSync(`${dest}.part.chunks`)).toBe(false);
  }, 120_000);
});
