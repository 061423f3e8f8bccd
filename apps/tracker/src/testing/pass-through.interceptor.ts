import { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { Observable } from 'rxjs';

/** Stands in for an interceptor in controller tests that check the handler alone. */
export const passThroughInterceptor: NestInterceptor = {
  intercept: (_context: ExecutionContext, next: CallHandler): Observable<unknown> => next.handle(),
};
