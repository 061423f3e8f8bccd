/** What services may know of a connection: who is logged in on it. */
export interface Session {
  readonly connectionId: number;
  readonly user: string | undefined;
  /** The peer's IP address, for per-address limits (absent in tests that do not care). */
  readonly remoteHost?: string;
  /** SHA-256 of the session's token, once it has one. */
  tokenHash?: string;
  setUser(userId: string): void;
  clearUser(): void;
}
