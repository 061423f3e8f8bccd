import { loadOrCreateIdentity, sniffStartTls, acceptTls, serverContext, startTlsClient } from './libs/tls/src';
import * as net from 'node:net';
import { mkdtempSync } from 'node:fs';
const id = loadOrCreateIdentity(mkdtempSync('/tmp/x-'), 's');
const srv = net.createServer((s) => {
  void sniffStartTls(s).then((f) => { console.log('sniff', f);
    acceptTls(s, { context: serverContext(id), timeoutMs: 2000, requestCert: true }).then((t) => { console.log('server secure'); t.on('data', d => { console.log('srv got', String(d)); t.end('bye\n'); }); }, (e) => console.log('server err', e));
  });
});
srv.listen(0, '127.0.0.1', async () => {
  const c = net.connect((srv.address() as any).port, '127.0.0.1', async () => {
    try { const t = await startTlsClient(c, { peer: 'x', timeoutMs: 2000, verify: (fp) => console.log('fp', fp), identity: id });
      t.write('hello\n'); t.on('data', d => { console.log('cli got', String(d)); srv.close(); });
    } catch (e) { console.log('client err', e); srv.close(); }
  });
});
