/**
 * Seed and number of runs of a fuzz test: `FUZZ_SEED` replays a failing run, `FUZZ_RUNS` makes it longer or
 * shorter. Without `FUZZ_SEED` each test run picks a new seed (and prints it when it fails).
 */
export function fuzzSettings(defaultRuns: number): { seed: number; runs: number } {
  const seedText = process.env.FUZZ_SEED;
  const runsText = process.env.FUZZ_RUNS;
  const seed = seedText ? Number(seedText) : (Date.now() ^ (process.pid << 16)) | 0;
  const runs = runsText ? Number(runsText) : defaultRuns;
  if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, not '${seedText}'`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, not '${runsText}'`);
  return { seed, runs };
}
