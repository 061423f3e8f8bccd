import {
  CapabilityClaims,
  capabilitySignedBytes,
  decodeCapability,
  ED25519_PKCS8_PREFIX,
  formatCapability,
  HELLO_LINE,
  HELLO_REPLY,
  parseFileMetadata,
  Reply,
} from '@app/protocol';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, hkdfSync, KeyObject, sign } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  CLIENT_MAIN,
  freePort,
  Proc,
  RawConn,
  removeDir,
  startClient,
  startTracker,
  TRACKER_MAIN,
  trackerNetwork,
} from './support/processes';

const MB = 1024 * 1024;
/** Capabilities live this long: a slow download outlives several of them. */
const TTL_SECONDS = 3;
/** What a seeder answers to every request it will not serve, byte for byte. */
const DENIED = 'ERR DENIED no valid capability for a file shared here\n';

interface Peer {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  readonly proc: Proc;
}

/**
 * Download capabilities against real processes: a seeder serves chunks only
 * for a capability the tracker signed for it; an outsider on another address
 * gets one and the same refusal for a real path, /etc/passwd, a forged,
 * altered or expired capability, or a member's capability shown to another
 * seeder, and no bytes; members download as before, and a download that lasts
 * several capability lifetimes renews them on the way. Two trackers: the
 * clients use tracker 1, erin tracker 2, so every capability erin presents
 * also shows that one tracker's capabilities are good at seeders of the other.
 */
describe('download capabilities (security: cap)', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let trackers: Proc[] = [];
  const peers = new Map<string, Peer>();
  /** erin, a member, talks to the tracker directly, as a client written from the protocol would. */
  let erin: RawConn;
  /** The network's capability signing key, derived from the key file as every tracker derives it. */
  let networkSigner: KeyObject;
  let secretPath: string;
  let secretHash: string;

  async function startPeer(name: string, extra: string[] = []): Promise<Peer> {
    const dir = join(net.dir, name);
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const proc = startClient(
      `127.0.0.1:${port}`,
      net.infoFile,
      ['--data-dir', join(dir, '.state'), '--capability-skew', '0', ...extra],
      dir,
    );
    const peer = { name, port, dir, proc };
    peers.set(name, peer);
    await proc.run(`create_user ${name} pw-${name}`, /created/);
    await proc.run(`login ${name} pw-${name}`, /logged in as/);
    return peer;
  }
  const peer = (name: string) => peers.get(name)!;

  /** erin's `download_file` metadata for a file: one fresh capability per online seeder. */
  async function capabilitiesFor(fileName: string): Promise<Map<string, string>> {
    const reply = okReply(await erin.request(`download_file team ${fileName}`));
    const meta = parseFileMetadata(reply.lines);
    return new Map(meta.seeders.map((s) => [s.userId, s.capability]));
  }

  /** A capability signed with `key` (default: the network's), with these claims. */
  function signed(claims: Partial<CapabilityClaims>, key = networkSigner): string {
    const bytes = capabilitySignedBytes({
      fileHash: secretHash,
      groupId: 'team',
      seederId: 'alice',
      downloaderId: 'erin',
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
      ...claims,
    });
    return formatCapability(bytes, sign(null, bytes, key));
  }

  beforeAll(async () => {
    net = await trackerNetwork(2);
    trackers = [1, 2].map((n) =>
      startTracker(net.infoFile, n, join(net.dir, `tracker-${n}`), ['--capability-ttl', `${TTL_SECONDS}s`]),
    );
    await Promise.all(trackers.map((t) => t.waitFor(/listening on/, 30_000)));
    const networkKey = Buffer.from(readFileSync(join(net.dir, 'tracker_info.key'), 'utf8').trim(), 'hex');
    const seed = Buffer.from(
      hkdfSync('sha256', networkKey, Buffer.alloc(0), 'p2p-share capability signing key v1', 32),
    );
    networkSigner = createPrivateKey({
      key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });

    await startPeer('alice');
    await startPeer('bob');
    await startPeer('carol');
    // dave seeds slowly: 1 MiB/s
    await startPeer('dave', ['--upload-limit', '1M']);
    await peer('alice').proc.run('create_group team', /created/);
    for (const name of ['bob', 'carol', 'dave']) {
      await peer(name).proc.run('join_group team', /asked to join/);
      await peer('alice').proc.run(`accept_request team ${name}`, /now a member/);
    }
    erin = await RawConn.open(net.ports[1]);
    okReply(await erin.request('create_user erin pw-erin'));
    okReply(await erin.request('login erin pw-erin'));
    okReply(await erin.request('join_group team'));
    await peer('alice').proc.run('accept_request team erin', /now a member/);

    // alice and bob seed the same 3 MB file (announced on tracker 1, seen on tracker 2)
    secretPath = join(peer('alice').dir, 'secret.bin');
    randomFile(secretPath, 3 * MB);
    copyFileSync(secretPath, join(peer('bob').dir, 'secret.bin'));
    secretPath = realpathSync(secretPath);
    secretHash = await sha1File(secretPath);
    await peer('alice').proc.run('upload_file team secret.bin', /shared secret\.bin/);
    await peer('bob').proc.run('upload_file team secret.bin', /shared secret\.bin/);
    await waitFor(async () => (await capabilitiesFor('secret.bin')).size === 2, 'tracker 2 sees both seeders');
  }, 90_000);

  afterAll(async () => {
    erin?.close();
    await Promise.all([...peers.values()].map((p) => p.proc.stop('SIGKILL')));
    await Promise.all(trackers.map((t) => t.stop('SIGKILL')));
    removeDir(net.dir);
  });

  it('refuses a bad --capability-ttl (tracker) or --capability-skew (client) with one line and exit status 2', () => {
    const run = (main: string, args: string[]) =>
      spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 15_000, input: '' });
    const tracker = run(TRACKER_MAIN, [net.infoFile, '1', '--capability-ttl', 'soon']);
    expect(tracker.status).toBe(2);
    expect(tracker.stderr).toMatch(
      /^error: --capability-ttl needs a duration such as 30s, 5m or 2h; usage: tracker .*\n$/,
    );
    const client = run(CLIENT_MAIN, ['127.0.0.1:1', net.infoFile, '--capability-skew', 'soon']);
    expect(client.status).toBe(2);
    expect(client.stderr).toMatch(
      /^error: --capability-skew 'soon' is not a duration such as 30s or 500ms; usage: client .*\n$/,
    );
  });

  it('gives members capabilities in seeder_file_paths, never paths; the client learns the key at login', async () => {
    const reply = okReply(await erin.request('download_file team secret.bin'));
    const pathsLine = reply.lines.find((l) => l.startsWith('seeder_file_paths:'))!;
    expect(pathsLine).toMatch(/^seeder_file_paths:[A-Za-z0-9_-]+,[A-Za-z0-9_-]+$/);
    expect(reply.lines.join('\n')).not.toContain(peer('alice').dir);
    const meta = parseFileMetadata(reply.lines);
    const claims = meta.seeders.map((s) => decodeCapability(s.capability)?.claims);
    const now = Date.now() / 1000;
    for (const [i, c] of claims.entries()) {
      expect(c).toMatchObject({ fileHash: secretHash, groupId: 'team', downloaderId: 'erin' });
      expect(c?.seederId).toBe(meta.seeders[i].userId);
      expect(c!.expiresAt).toBeGreaterThan(now);
      expect(c!.expiresAt).toBeLessThanOrEqual(Math.ceil(now + TTL_SECONDS + 1));
    }
    // the login reply carries the key a seeder checks capabilities with: the same from either tracker
    const keys: string[] = [];
    for (const [n, user] of [
      [0, 'frank'],
      [1, 'gina'],
    ] as const) {
      const other = await RawConn.open(net.ports[n]);
      try {
        okReply(await other.request(`create_user ${user} pw-${user}`));
        const login = okReply(await other.request(`login ${user} pw-${user}`));
        expect(login.lines).toEqual([
          expect.stringMatching(/^session_token:[0-9a-f]{64}$/),
          expect.stringMatching(/^capability_key:[A-Za-z0-9_-]{43}$/),
        ]);
        keys.push(login.lines[1]);
      } finally {
        other.close();
      }
    }
    expect(keys[0]).toBe(keys[1]);
  });

  it('serves a member who presents the capability the tracker gave, and refuses an outsider on 127.0.0.2 everything else, byte-identically and without a byte of the file', async () => {
    const caps = await capabilitiesFor('secret.bin');
    const alice = peer('alice').port;
    // a member from 127.0.0.1 is served
    const served = await exchange(alice, `GET_CHUNK 0 ${caps.get('alice')}\n`);
    expect(served.subarray(0, served.indexOf(0x0a) + 1).toString()).toBe('CHUNK 0 524288\n');
    expect(served.subarray(served.indexOf(0x0a) + 1).equals(readFileSync(secretPath).subarray(0, 512 * 1024))).toBe(
      true,
    );

    const valid = caps.get('alice')!;
    const flipped = (at: number) => {
      const bytes = Buffer.from(valid, 'base64url');
      bytes[at] ^= 0x01;
      return bytes.toString('base64url');
    };
    const length = Buffer.from(valid, 'base64url').length;
    const otherKey = generateKeyPairSync('ed25519').privateKey;
    const attacks: [string, string][] = [
      ['the real absolute path of a shared file', secretPath],
      ['a path that is not shared', join(peer('alice').dir, 'not-shared.bin')],
      ['/etc/passwd', '/etc/passwd'],
      ['a ../ climb', `${peer('alice').dir}/../../../../etc/passwd`],
      ['a forged capability (another key)', signed({}, otherKey)],
      ['a capability with its version byte changed', flipped(0)],
      ['a capability with its expiry changed', flipped(8)],
      ['a capability with its file hash changed', flipped(20)],
      ['a capability with its seeder changed', flipped(length - 64 - 6)],
      ['a capability with its signature changed', flipped(length - 1)],
      ['an expired capability, properly signed', signed({ expiresAt: Math.floor(Date.now() / 1000) - 5 })],
      ['a member’s valid capability for bob, shown to alice', caps.get('bob')!],
      ['a properly signed capability for a file alice does not share', signed({ fileHash: 'f'.repeat(40) })],
      ['a properly signed capability for another group', signed({ groupId: 'other' })],
      ['garbage', 'AAAA'],
    ];
    for (const [what, arg] of attacks) {
      for (const index of [0, 1, 999]) {
        const answer = await exchange(alice, `GET_CHUNK ${index} ${arg}\n`, '127.0.0.2');
        expect({ what, index, answer: answer.toString('latin1') }).toEqual({ what, index, answer: DENIED });
        // in the seed form (no HELLO) the refusal is a close without a byte
        const seedAnswer = await exchange(alice, `GET_CHUNK ${index} ${arg}\n`, '127.0.0.2', 'seed');
        expect({ what, index, bytes: seedAnswer.length }).toEqual({ what, index, bytes: 0 });
      }
    }
    // the same on one connection, pipelined: every answer is the one line, and nothing else comes
    const all = await exchange(alice, attacks.map(([, arg]) => `GET_CHUNK 0 ${arg}\n`).join(''), '127.0.0.2');
    expect(all.toString('latin1')).toBe(DENIED.repeat(attacks.length));
    // erin's capability, properly derived from the network key, is good at bob's only for bob
    const forBob = await exchange(peer('bob').port, `GET_CHUNK 2 ${caps.get('bob')}\n`);
    expect(forBob.subarray(0, forBob.indexOf(0x0a)).toString()).toBe('CHUNK 2 524288');
    // and one the test signs itself with the key derived as documented is honoured
    const ours = await exchange(alice, `GET_CHUNK 5 ${signed({})}\n`);
    expect(ours.subarray(0, ours.indexOf(0x0a)).toString()).toBe('CHUNK 5 524288');
    // in the seed form a member gets exactly the raw bytes of the chunk, nothing before or after
    const raw = await exchange(alice, `GET_CHUNK 1 ${caps.get('alice')}\n`, '127.0.0.1', 'seed');
    expect(raw.equals(readFileSync(secretPath).subarray(512 * 1024, 1024 * 1024))).toBe(true);
  });

  it('answers a member within one second while outsiders on 127.0.0.3 hammer the seeder', async () => {
    const alice = peer('alice').port;
    const junk = Array.from(
      { length: 200 },
      (_, i) => `GET_CHUNK ${i} ${signed({}, generateKeyPairSync('ed25519').privateKey)}\n`,
    ).join('');
    let attacking = true;
    const attackers = Array.from({ length: 4 }, async () => {
      while (attacking) await exchange(alice, junk, '127.0.0.3').catch(() => undefined);
    });
    try {
      for (let round = 0; round < 5; round++) {
        const caps = await capabilitiesFor('secret.bin');
        const started = Date.now();
        const answer = await exchange(alice, `GET_CHUNK ${round} ${caps.get('alice')}\n`);
        const elapsed = Date.now() - started;
        expect(answer.subarray(0, answer.indexOf(0x0a)).toString()).toBe(`CHUNK ${round} 524288`);
        expect(elapsed).toBeLessThan(1000);
      }
    } finally {
      attacking = false;
      await Promise.all(attackers);
    }
  });

  it('a member downloads the file byte for byte with download_file', async () => {
    const carol = peer('carol');
    await carol.proc.run('download_file team secret.bin secret-copy.bin', /downloading secret\.bin .* from 2 seeders/);
    const done = await carol.proc.waitFor(/downloaded \[team\] secret\.bin.*|download of secret\.bin failed.*/, 60_000);
    expect(done).toMatch(/downloaded \[team\] secret\.bin/);
    expect(done).not.toMatch(/dropped/);
    expect(await sha1File(join(carol.dir, 'secret-copy.bin'))).toBe(secretHash);
  });

  it(`renews capabilities during a download that lasts several ${TTL_SECONDS} s lifetimes, without the user noticing`, async () => {
    // 12 MiB from a seeder capped at 1 MiB/s: at least 12 s, four capability lifetimes; dave allows no clock skew
    const slow = join(peer('dave').dir, 'slow.bin');
    randomFile(slow, 12 * MB);
    await peer('dave').proc.run('upload_file team slow.bin', /shared slow\.bin/);
    const carol = peer('carol');
    const started = Date.now();
    await carol.proc.run('download_file team slow.bin slow-copy.bin', /downloading slow\.bin .* from 1 seeder/);
    const done = await carol.proc.waitFor(/downloaded \[team\] slow\.bin.*|download of slow\.bin failed.*/, 120_000);
    const seconds = (Date.now() - started) / 1000;
    expect(done).toMatch(/downloaded \[team\] slow\.bin/);
    expect(done).not.toMatch(/dropped|error/);
    expect(seconds).toBeGreaterThan(3 * TTL_SECONDS);
    expect(await sha1File(join(carol.dir, 'slow-copy.bin'))).toBe(await sha1File(slow));
    // no error line reached the user on the way
    expect(carol.proc.stdout).not.toMatch(/error: .*(DENIED|capabilit)/i);
  }, 150_000);
});

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function okReply(reply: Reply): Extract<Reply, { ok: true }> {
  if (!reply.ok) throw new Error(`expected OK, got ERR ${reply.code} ${reply.message}`);
  return reply;
}

/**
 * Sends `request` to a seeder from `localAddress`, half-closes, and returns
 * every byte the seeder sent until it closed (it answers all, then ends). In
 * the extended form (default) `HELLO p2p-share/2` goes first and its
 * `OK 0 p2p-share/2` line is checked and cut off the answer; in the seed form
 * the request goes alone and the answer is every raw byte.
 */
async function exchange(
  port: number,
  request: string,
  localAddress = '127.0.0.1',
  form: 'extended' | 'seed' = 'extended',
): Promise<Buffer> {
  if (form === 'seed') return rawExchange(port, request, localAddress);
  const answer = await rawExchange(port, `${HELLO_LINE}\n${request}`, localAddress);
  const greeting = Buffer.from(`${HELLO_REPLY}\n`);
  expect(answer.subarray(0, greeting.length).toString('latin1')).toBe(greeting.toString('latin1'));
  return answer.subarray(greeting.length);
}

function rawExchange(port: number, request: string, localAddress: string, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = [];
    const socket: Socket = connect({ host: '127.0.0.1', port, localAddress }, () => socket.end(request));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of answer to ${request.slice(0, 60)}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => pieces.push(d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(pieces));
    });
  });
}
