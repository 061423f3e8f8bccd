import { Clock } from '../common/clock';

/** A clock that moves only when told to. */
export class FakeClock implements Clock {
  constructor(private ms = 1_764_000_000_000) {}

  now(): number {
    return this.ms;
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}
