import { CHUNK_SIZE } from '@app/chunking';
import { parseFileMetadata, Reply } from '@app/protocol';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Proc, RawConn, removeDir, startTracker, trackerNetwork } from './support/processes';
import { eventually, must, stateDigest } from './support/sync';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/** Chunk hashes of a 100 GiB file: 204,800 of them, 8.4 MB as one comma-separated list. */
const COUNT = 204_800;
const SIZE = COUNT * CHUNK_SIZE;
/** Small writes after the big ones, half through each tracker. */
const WRITES = 1_000;
/** A write that waited for a stalled link would take the tracker's replication wait: 2 s. */
const REPLICATION_WAIT_MS = 2000;

/**
 * Replication of ops far longer than a client's line (a 100 GiB file's metadata) never wedges the link
 * between two trackers: writes after it are not held by it, and both trackers end equal.
 */
describe('replication of big metadata', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const conns: RawConn[] = [];

  /** Two real trackers of one network, listening, each on its own data dir. */
  async function twoTrackers(): Promise<{
    net: Awaited<ReturnType<typeof trackerNetwork>>;
    keyFile: string;
    trackers: Proc[];
  }> {
    const net = await trackerNetwork(2);
    dirs.push(net.dir);
    const trackers = [1, 2].map((n) => startTracker(net.infoFile, n, join(net.dir, `data-${n}`)));
    procs.push(...trackers);
    for (const t of trackers) await t.waitFor(/listening on/, 15_000);
    return { net, keyFile: net.infoFile.replace(/\.txt$/, '.key'), trackers };
  }

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    dirs.splice(0).forEach(removeDir);
  });

  it('a 204,800-hash upload_file (inline and @N), then 1,000 pipelined writes on both trackers: no write waits, both converge', async () => {
    const { net, keyFile, trackers } = await twoTrackers();
    const open = async (n: number) => {
      const c = await RawConn.open(net.ports[n - 1]);
      conns.push(c);
      return c;
    };
    const digests = () =>
      Promise.all([stateDigest(net.ports[0], keyFile, 2, 1), stateDigest(net.ports[1], keyFile, 1, 2)]);
    const converged = async (timeoutMs: number) => {
      const started = Date.now();
      await eventually(
        async () => {
          const [d1, d2] = await digests();
          return d1 === d2;
        },
        timeoutMs,
        'trackers 1 and 2 agreeing',
      );
      return Date.now() - started;
    };

    const a = await open(1);
    must(await a.request('create_user alice pa'));
    must(await a.request('create_user bob pb'));
    must(await a.request('login alice pa'));
    must(await a.request('create_group big'));
    await converged(20_000);
    const b = await open(2);
    must(await b.request('login bob pb'));
    must(await b.request('join_group big'));
    await converged(20_000);
    must(await a.request('accept_request big bob'));

    // the metadata of two 100 GiB files: one with every hash inline on one 8.4 MB line, one as @205 lines
    const inline = Array.from({ length: COUNT }, (_, i) => sha1(`inline ${i}`));
    const split = Array.from({ length: COUNT }, (_, i) => sha1(`split ${i}`));
    const inlineLine = `upload_file big /data/inline.img ${SIZE} ${sha1('inline')} ${inline.join(',')} 7001\n`;
    expect(inlineLine.length).toBeGreaterThan(8_000_000);
    const continuation: string[] = [];
    for (let i = 0; i < COUNT; i += 1000) continuation.push(split.slice(i, i + 1000).join(','));
    const splitLines = [
      `upload_file big /data/split.img ${SIZE} ${sha1('split')} @${continuation.length} 7001`,
      ...continuation,
    ].join('\n');

    // everything pipelined: the two uploads on tracker 1, then the small writes on both trackers at once
    const started = performance.now();
    a.write(inlineLine);
    a.write(`${splitLines}\n`);
    const onA = Array.from({ length: WRITES / 2 }, (_, i) => `create_group a${i}`);
    const onB = Array.from({ length: WRITES / 2 }, (_, i) => `create_group b${i}`);
    a.write(onA.map((l) => `${l}\n`).join(''));
    b.write(onB.map((l) => `${l}\n`).join(''));

    /** Reads `count` replies, each with its arrival (ms after the start). */
    const replies = async (conn: RawConn, count: number) => {
      const got: { reply: Reply; at: number }[] = [];
      for (let i = 0; i < count; i++) got.push({ reply: await conn.reply(60_000), at: performance.now() - started });
      return { got };
    };
    const [fromA, fromB] = await Promise.all([replies(a, 2 + onA.length), replies(b, onB.length)]);
    const uploads = fromA.got.slice(0, 2);
    const writesA = fromA.got.slice(2);
    for (const { reply } of [...fromA.got, ...fromB.got]) must(reply);
    expect(uploads[0].reply.ok && uploads[0].reply.message).toBe('shared inline.img in group big (204800 chunks)');
    expect(uploads[1].reply.ok && uploads[1].reply.message).toBe('shared split.img in group big (204800 chunks)');

    // the small writes, from the upload's answer (tracker 1) or the start (tracker 2) to the last answer
    const writesMsA = writesA[writesA.length - 1].at - uploads[1].at;
    const writesMsB = fromB.got[fromB.got.length - 1].at;
    const longestGap = Math.max(
      ...writesA.slice(1).map((g, i) => g.at - writesA[i].at),
      fromB.got[0].at,
      ...fromB.got.slice(1).map((g, i) => g.at - fromB.got[i].at),
    );
    const convergeMs = await converged(20_000);
    const replays = trackers.map((t) => (t.stdout.match(/replayed the log/g) ?? []).length);
    console.log(
      `uploads answered at ${uploads[0].at.toFixed(0)} and ${uploads[1].at.toFixed(0)} ms; ` +
        `${onA.length} writes through tracker 1 took ${writesMsA.toFixed(0)} ms after them, ` +
        `${onB.length} through tracker 2 ${writesMsB.toFixed(0)} ms; slowest write ${longestGap.toFixed(0)} ms; ` +
        `digests equal ${convergeMs} ms after the last answer; log replays: ${replays.join(' and ')}`,
    );
    // a wedged link costs every write the replication wait (500 writes: 1,000 s); a replay of the whole log for
    // each change from the other tracker cost ~200 ms a write with these files in it; a live link, milliseconds
    expect(writesMsA / onA.length).toBeLessThan(REPLICATION_WAIT_MS / 20);
    expect(writesMsB / onB.length).toBeLessThan(REPLICATION_WAIT_MS / 20);
    expect(longestGap).toBeLessThan(REPLICATION_WAIT_MS);
    expect(convergeMs).toBeLessThan(10_000);

    // and what tracker 2 holds is the whole metadata of both files
    for (const [name, hashes] of [
      ['inline.img', inline],
      ['split.img', split],
    ] as const) {
      const meta = parseFileMetadata(must(await b.request(`download_file big ${name}`)));
      expect(meta.fileSize).toBe(SIZE);
      expect(meta.chunkHashes).toEqual(hashes);
    }
    const groups = must(await b.request('list_groups'));
    expect(groups.filter((g) => /^a\d+ /.test(g))).toHaveLength(onA.length);
    expect(groups.filter((g) => /^b\d+ /.test(g))).toHaveLength(onB.length);
  }, 180_000);

  it('an upload_file line over 64 MiB, as long as --max-upload-line allows, replicates, and the link carries on', async () => {
    const { net, keyFile } = await twoTrackers();
    const a = await RawConn.open(net.ports[0]);
    conns.push(a);
    must(await a.request('create_user alice pa'));
    must(await a.request('login alice pa'));
    must(await a.request('create_group huge'));

    // 1,700,000 chunks (830 GiB): a 70 MB line, over the 64 MiB a tracker link used to take, under the 192 MiB upload limit
    const count = 1_700_000;
    const hashes = Array.from({ length: count }, (_, i) => i.toString(16).padStart(40, '0'));
    const line = `upload_file huge /data/huge.img ${count * CHUNK_SIZE} ${sha1('huge')} ${hashes.join(',')} 7001`;
    expect(line.length).toBeGreaterThan(64 * 1024 * 1024);
    expect(must(await a.request(line))).toEqual([]);
    must(await a.request('create_group after'));
    await eventually(
      async () => {
        const [d1, d2] = await Promise.all([
          stateDigest(net.ports[0], keyFile, 2, 1),
          stateDigest(net.ports[1], keyFile, 1, 2),
        ]);
        return d1 === d2;
      },
      60_000,
      'trackers 1 and 2 agreeing',
    );
    const b = await RawConn.open(net.ports[1]);
    conns.push(b);
    must(await b.request('login alice pa'));
    expect(must(await b.request('list_groups'))).toEqual([
      'after owner=alice members=1 you=owner',
      'huge owner=alice members=1 you=owner',
    ]);
    expect(must(await b.request('list_files huge'))).toEqual(['huge.img size=' + count * CHUNK_SIZE + ' seeders=1']);
  }, 180_000);
});
