import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Reply } from '@app/protocol';
import { RawConn } from './processes';

/** Asks a tracker for its state digest, proving (with the network key) to be tracker `claimAs`. */
export async function stateDigest(port: number, keyFile: string, claimAs: number): Promise<string> {
  const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
  const conn = await RawConn.open(port);
  try {
    const hello = must(await conn.request(`123456789 sync_hello ${claimAs}`));
    const proof = createHmac('sha256', key).update(`${hello[0]}:${claimAs}`).digest('hex');
    must(await conn.request(`123456789 sync_auth ${proof}`));
    return must(await conn.request('123456789 sync_digest'))[0];
  } finally {
    conn.close();
  }
}

export function must(reply: Reply): readonly string[] {
  if (!reply.ok) throw new Error(`expected OK, got ERR ${reply.code} ${reply.message}`);
  return reply.lines;
}

export async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
