import { Reply } from '@app/protocol';
import { OutputPort } from '../output/output.port';
import { TrackerReplyError } from '../tracker/tracker-reply.errors';

/** Prints a tracker reply the way the shell prints every reply; throws a TrackerReplyError on ERR so the shell shows `error:`. */
export function print(out: OutputPort, reply: Reply): void {
  if (!reply.ok) throw new TrackerReplyError(reply);
  if (reply.message !== '') out.line(reply.message);
  reply.lines.forEach((l) => out.line(l));
}
