import { ExecutionContext } from '@nestjs/common';
import { PeerContext } from '../transport/peer.context';
import { TlsRequiredError } from './auth.errors';
import { RequireTlsGuard } from './require-tls.guard';

describe(RequireTlsGuard.name, () => {
  const over = (tls: boolean): ExecutionContext => {
    const ctx = new PeerContext(1, '127.0.0.1:5000');
    if (tls) ctx.tls = { peerFingerprint: undefined, exportKeyingMaterial: () => Buffer.alloc(0) };
    return { switchToRpc: () => ({ getContext: () => ctx }) } as unknown as ExecutionContext;
  };

  it('lets plain and TLS connections through without --require-tls', () => {
    const guard = new RequireTlsGuard({});
    expect(guard.canActivate(over(false))).toBe(true);
    expect(guard.canActivate(over(true))).toBe(true);
    expect(new RequireTlsGuard().canActivate(over(false))).toBe(true);
  });

  it('with --require-tls refuses a plain connection with TLS_REQUIRED and lets a TLS one through', () => {
    const guard = new RequireTlsGuard({ requireTls: true });
    expect(() => guard.canActivate(over(false))).toThrow(TlsRequiredError);
    expect(() => guard.canActivate(over(false))).toThrow(
      'this tracker requires TLS: connect with STARTTLS (docs/PROTOCOL.md 8)',
    );
    expect(guard.canActivate(over(true))).toBe(true);
  });
});
