import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  freePort,
  Proc,
  RawConn,
  removeDir,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';
import { httpGet, Sample, scrape, valueOf } from './support/prometheus';
import { eventually } from './support/sync';

const FILE_BYTES = 3 * 1024 * 1024 + 12_345;

interface Health {
  status: string;
  tracker: number;
  peers: { tracker: number; address: string; linked: boolean; behind: number }[];
}

async function health(port: number): Promise<{ status: number; body: Health }> {
  const res = await httpGet(port, '/healthz');
  expect(res.type).toMatch(/^application\/json/);
  return { status: res.status, body: JSON.parse(res.body) as Health };
}

/** `--http-port` on the tracker and `--metrics-port` on the client, scraped after real traffic between processes. */
describe('health and metrics endpoints', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const conns: RawConn[] = [];

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    dirs.splice(0).forEach(removeDir);
  });

  async function tracker(infoFile: string, n: number, dir: string, httpPort: number, extra: string[] = []) {
    const p = await startTrackerReady(infoFile, n, join(dir, `tracker-${n}`), [
      '--http-port',
      String(httpPort),
      ...extra,
    ]);
    procs.push(p);
    return p;
  }

  it('counts commands, outcomes, latency, refusals and state on the tracker, and bytes up and down on the clients', async () => {
    const net = await trackerNetwork(1);
    dirs.push(net.dir);
    const httpPort = await freePort();
    await tracker(net.infoFile, 1, net.dir, httpPort);
    const before = await scrape(httpPort);
    expect(valueOf(before, 'p2p_tracker_users')).toBe(0);
    expect(valueOf(before, 'p2p_tracker_commands_total', { command: 'login', outcome: 'ok' })).toBe(0);
    expect(valueOf(before, 'process_resident_memory_bytes')).toBeGreaterThan(0); // Node's default metrics

    const metricsPorts = { alice: await freePort(), bob: await freePort() };
    const start = async (name: 'alice' | 'bob'): Promise<ClientPeer> => {
      const peer = startClientIn(net.dir, net.infoFile, name, await freePort(), [
        '--metrics-port',
        String(metricsPorts[name]),
      ]);
      procs.push(peer.proc);
      await peer.proc.run(`create_user ${name} pw-${name}`, /created/);
      await peer.proc.run(`login ${name} pw-${name}`, /logged in/);
      return peer;
    };
    const alice = await start('alice');
    const bob = await start('bob');
    await alice.proc.run('create_group team', /created/);
    await bob.proc.run('join_group team', /asked to join/);
    await alice.proc.run('accept_request team bob', /now a member/);
    await bob.proc.run('list_groups', /team owner=alice/);

    // a failed login and an overlong line, from a raw connection
    const raw = await RawConn.open(net.ports[0]);
    conns.push(raw);
    expect(await raw.request('login alice wrong-password')).toMatchObject({ ok: false, code: 'LOGIN_FAILED' });
    expect(await raw.request(`list_groups ${'x'.repeat(70 * 1024)}`)).toMatchObject({
      ok: false,
      code: 'LINE_TOO_LONG',
    });

    randomFile(join(alice.dir, 'report.bin'), FILE_BYTES);
    await alice.proc.run('upload_file team report.bin', /shared report\.bin in group team/);
    mkdirSync(join(bob.dir, 'in'));
    await bob.proc.run('download_file team report.bin in', /downloading report\.bin/);
    await bob.proc.waitFor(/downloaded \[team\] report\.bin/, 60_000);
    expect(await sha1File(join(bob.dir, 'in', 'report.bin'))).toBe(await sha1File(join(alice.dir, 'report.bin')));

    const after = await scrape(httpPort);
    const commands = (command: string, outcome: string) =>
      valueOf(after, 'p2p_tracker_commands_total', { command, outcome });
    expect(commands('create_user', 'ok')).toBe(2);
    expect(commands('login', 'ok')).toBe(2);
    expect(commands('login', 'LOGIN_FAILED')).toBe(1);
    expect(commands('list_groups', 'ok')).toBe(1);
    expect(commands('upload_file', 'ok')).toBe(1);
    expect(commands('download_file', 'ok')).toBeGreaterThanOrEqual(1);
    const latency = (name: string, labels: Record<string, string>) =>
      valueOf(after, `p2p_tracker_request_duration_seconds_${name}`, labels);
    expect(latency('count', { command: 'login' })).toBe(3);
    expect(latency('bucket', { command: 'login', le: '+Inf' })).toBe(3);
    expect(latency('sum', { command: 'login' })).toBeGreaterThan(0);
    expect(valueOf(after, 'p2p_tracker_refusals_total', { limit: 'line_too_long' })).toBe(1);
    expect(valueOf(after, 'p2p_tracker_users')).toBe(2);
    expect(valueOf(after, 'p2p_tracker_groups')).toBe(1);
    expect(valueOf(after, 'p2p_tracker_files')).toBe(1);
    // alice's and bob's clients and the raw connection
    expect(valueOf(after, 'p2p_tracker_open_connections')).toBeGreaterThanOrEqual(3);
    raw.close();
    await eventually(
      async () => valueOf(await scrape(httpPort), 'p2p_tracker_open_connections') === 2,
      15_000,
      'the raw connection leaving the open connections',
    );

    const up = await scrape(metricsPorts.alice);
    const down = await scrape(metricsPorts.bob);
    expect(valueOf(up, 'p2p_client_uploaded_bytes_total')).toBe(FILE_BYTES);
    expect(valueOf(down, 'p2p_client_downloaded_bytes_total')).toBe(FILE_BYTES);
    expect(valueOf(down, 'p2p_client_uploaded_bytes_total')).toBe(0);
    expect(valueOf(down, 'p2p_client_downloads', { state: 'complete' })).toBe(1);
    expect(valueOf(down, 'p2p_client_downloads', { state: 'downloading' })).toBe(0);
    expect(valueOf(up, 'p2p_client_downloads', { state: 'complete' })).toBe(0);
  }, 120_000);

  it('answers 404 off its paths and 405 to anything but GET, and counts connection refusals by limit', async () => {
    const net = await trackerNetwork(1);
    dirs.push(net.dir);
    const httpPort = await freePort();
    await tracker(net.infoFile, 1, net.dir, httpPort, ['--max-conns-per-ip', '1', '--idle-timeout-login', '1s']);
    expect((await httpGet(httpPort, '/')).status).toBe(404);
    expect((await httpGet(httpPort, '/metrics/x')).status).toBe(404);
    const post = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    const { status, body } = await health(httpPort);
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'up', tracker: 1, peers: [] });

    const first = await RawConn.open(net.ports[0]);
    conns.push(first);
    // a second connection from the same address: refused with one line, then closed
    const refused = await new Promise<string>((resolve, reject) => {
      let seen = '';
      const socket = connect(net.ports[0], '127.0.0.1', () => socket.write('HELLO p2p-share/2\n'));
      socket.setEncoding('utf8').on('data', (d: string) => (seen += d));
      socket.on('error', reject).on('close', () => resolve(seen));
    });
    expect(refused).toMatch(/^ERR TOO_MANY_CONNECTIONS /);
    await eventually(
      () => Promise.resolve(first.closed),
      10_000,
      'the first connection closed for idling before login',
    );
    const refusals = await scrape(httpPort);
    expect(valueOf(refusals, 'p2p_tracker_refusals_total', { limit: 'too_many_connections' })).toBe(1);
    expect(valueOf(refusals, 'p2p_tracker_refusals_total', { limit: 'idle_timeout' })).toBe(1);
    expect(valueOf(refusals, 'p2p_tracker_open_connections')).toBe(0);
  }, 60_000);

  it('shows each peer tracker linked and how far behind, and a stopped peer as not linked', async () => {
    const net = await trackerNetwork(2);
    dirs.push(net.dir);
    const httpPorts = [await freePort(), await freePort()];
    await tracker(net.infoFile, 1, net.dir, httpPorts[0]);
    const t2 = await tracker(net.infoFile, 2, net.dir, httpPorts[1]);
    const peerOf1 = async () => (await health(httpPorts[0])).body.peers[0];
    await eventually(async () => (await peerOf1()).linked, 20_000, 'tracker 1 linked with tracker 2');
    expect(await health(httpPorts[0])).toEqual({
      status: 200,
      body: {
        status: 'up',
        tracker: 1,
        peers: [{ tracker: 2, address: `127.0.0.1:${net.ports[1]}`, linked: true, behind: 0 }],
      },
    });
    const conn = await RawConn.open(net.ports[0]);
    conns.push(conn);
    expect(await conn.request('create_user carol pc')).toMatchObject({ ok: true });
    await eventually(async () => (await peerOf1()).behind === 0, 15_000, 'tracker 2 holding the new user');
    const metrics = await scrape(httpPorts[0]);
    const peer = { peer: '2', address: `127.0.0.1:${net.ports[1]}` };
    expect(valueOf(metrics, 'p2p_tracker_sync_link_up', peer)).toBe(1);
    expect(valueOf(metrics, 'p2p_tracker_sync_behind_ops', peer)).toBe(0);

    await t2.stop('SIGKILL');
    await eventually(async () => !(await peerOf1()).linked, 20_000, 'tracker 1 seeing tracker 2 gone');
    expect(await conn.request('create_user dave pd')).toMatchObject({ ok: true });
    const { status, body } = await health(httpPorts[0]);
    expect(status).toBe(200); // tracker 1 still serves
    expect(body.peers).toEqual([{ tracker: 2, address: `127.0.0.1:${net.ports[1]}`, linked: false, behind: 1 }]);
    const down: Sample[] = await scrape(httpPorts[0]);
    expect(valueOf(down, 'p2p_tracker_sync_link_up', peer)).toBe(0);
    expect(valueOf(down, 'p2p_tracker_sync_behind_ops', peer)).toBe(1);
  }, 90_000);
});
