import { Reply } from '@app/protocol';
import { join } from 'node:path';
import { Proc, RawConn, removeDir, startTrackerReady, trackerNetwork } from './support/processes';

const ok = (r: Reply): readonly string[] => {
  if (!r.ok) throw new Error(`expected OK, got ERR ${r.code} ${r.message}`);
  return r.lines;
};

describe('tracker state survives kill -9', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc | undefined;

  beforeAll(async () => {
    net = await trackerNetwork(1);
  });

  afterAll(async () => {
    await tracker?.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('keeps every acknowledged user, group, request and acceptance', async () => {
    const dataDir = join(net.dir, 'data');
    tracker = await startTrackerReady(net.infoFile, 1, dataDir);
    const alice = await RawConn.open(net.ports[0]);
    const bob = await RawConn.open(net.ports[0]);
    const carol = await RawConn.open(net.ports[0]);
    ok(await alice.request('create_user alice "correct horse"'));
    ok(await bob.request('create_user bob b-secret'));
    ok(await carol.request('create_user carol c-secret'));
    ok(await alice.request('login alice "correct horse"'));
    ok(await bob.request('login bob b-secret'));
    ok(await carol.request('login carol c-secret'));
    ok(await alice.request('create_group team'));
    ok(await bob.request('join_group team'));
    ok(await carol.request('join_group team'));
    ok(await alice.request('accept_request team bob'));
    // the last acknowledged change, then straight to kill -9
    await tracker.stop('SIGKILL');
    [alice, bob, carol].forEach((c) => c.close());

    tracker = await startTrackerReady(net.infoFile, 1, dataDir);
    const again = await RawConn.open(net.ports[0]);
    const wrong = await again.request('login alice b-secret');
    expect(wrong.ok ? 'OK' : wrong.code).toBe('LOGIN_FAILED');
    ok(await again.request('login alice "correct horse"'));
    expect(ok(await again.request('list_groups'))).toEqual(['team owner=alice members=2 you=owner']);
    expect(ok(await again.request('list_requests team'))).toEqual(['carol']);
    const dup = await again.request('create_user bob other');
    expect(dup.ok ? 'OK' : dup.code).toBe('USER_EXISTS');
    // bob's membership came back too: he may leave, and carol's request is still acceptable
    ok(await again.request('accept_request team carol'));
    expect(ok(await again.request('list_groups'))).toEqual(['team owner=alice members=3 you=owner']);
    again.close();
  });
});
