/** What services may know of a connection: who is logged in on it. */
export interface Session {
  readonly connectionId: number;
  readonly user: string | undefined;
  setUser(userId: string): void;
  clearUser(): void;
}
