import { CanActivate, ExecutionContext, Inject, Injectable, Optional } from '@nestjs/common';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { PeerContext } from '../transport/peer.context';
import { TlsRequiredError } from './auth.errors';

/**
 * `--require-tls`: a password or a session token is taken only inside TLS.
 * On a connection that did not begin with STARTTLS the guarded handler
 * (`login`, `resume`, `create_user`) is refused before it runs; everything
 * else stays open to plain connections. Without the flag it lets all through.
 */
@Injectable()
export class RequireTlsGuard implements CanActivate {
  private readonly required: boolean;

  constructor(@Optional() @Inject(TRACKER_CONFIG) config?: Pick<TrackerConfig, 'requireTls'>) {
    this.required = config?.requireTls === true;
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.required) return true;
    const ctx = context.switchToRpc().getContext<PeerContext>();
    if (ctx.tls === undefined) throw new TlsRequiredError();
    return true;
  }
}
