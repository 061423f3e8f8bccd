export interface UserRecord {
  readonly userId: string;
  /** `scrypt$N$r$p$salt$hash`, never the password. */
  readonly passwordHash: string;
  readonly createdAt: number;
}

export interface UserStore {
  /** Adds the user; false when the id is taken. */
  add(user: UserRecord): boolean;
  get(userId: string): UserRecord | undefined;
  count(): number;
}
