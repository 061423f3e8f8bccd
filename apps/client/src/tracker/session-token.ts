import { okReply, Reply } from '@app/protocol';

/** The body line of a `login` reply that carries the session token: `session_token:<64 hex>`. */
export const SESSION_TOKEN_FIELD = 'session_token';

const TOKEN_LINE = new RegExp(`^${SESSION_TOKEN_FIELD}:([A-Za-z0-9_-]{1,256})$`);

/** The session token of a successful `login` reply; undefined when the tracker sent none. */
export function sessionTokenOf(reply: Reply): string | undefined {
  if (!reply.ok) return undefined;
  for (const line of reply.lines) {
    const m = TOKEN_LINE.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** The reply as a person should see it: without the token line, which is for this client only. */
export function withoutSessionToken(reply: Reply): Reply {
  if (!reply.ok) return reply;
  const lines = reply.lines.filter((l) => !l.startsWith(`${SESSION_TOKEN_FIELD}:`));
  return lines.length === reply.lines.length ? reply : okReply(reply.message, lines);
}
