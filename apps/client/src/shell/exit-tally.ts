/**
 * What the shell ran and what failed, for the exit status: a piped script in which some command failed exits 1 and
 * says how many (`1 of 7 commands failed`).
 */
export class ExitTally {
  private ran = 0;
  private failedCount = 0;

  record(ok: boolean): void {
    this.ran++;
    if (!ok) this.failedCount++;
  }

  /** A command counted as done that failed later (a background download). */
  failLater(count = 1): void {
    this.failedCount += count;
  }

  get failed(): number {
    return this.failedCount;
  }

  get commands(): number {
    return this.ran;
  }

  /** `undefined` when everything succeeded, else the line that says what failed. */
  summary(): string | undefined {
    if (this.failedCount === 0) return undefined;
    const n = Math.max(this.ran, this.failedCount);
    return `${this.failedCount} of ${n} command${n === 1 ? '' : 's'} failed`;
  }
}
