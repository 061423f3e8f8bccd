import { UseInterceptors } from '@nestjs/common';
import { ReplicationInterceptor } from './replication.interceptor';

/**
 * Marks a handler that changes replicated state (it commits ops): a retried
 * request is not applied twice, and the reply waits for the other trackers to
 * hold the change. Reads go without it, and without its cost.
 */
export const Replicated = (): MethodDecorator & ClassDecorator => UseInterceptors(ReplicationInterceptor);
