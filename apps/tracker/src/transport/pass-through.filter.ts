import { ArgumentsHost, Catch, RpcExceptionFilter } from '@nestjs/common';
import { Observable, throwError } from 'rxjs';

/**
 * Hands every handler exception to the transport unchanged, so that one
 * place (`TextLineServer.toErrorReply`) turns it into reply text.
 */
@Catch()
export class PassThroughExceptionFilter implements RpcExceptionFilter<unknown> {
  catch(exception: unknown, _host: ArgumentsHost): Observable<never> {
    return throwError(() => exception);
  }
}
