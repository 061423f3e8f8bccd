import fc from 'fast-check';
import { join } from 'node:path';
import { Proc, RawConn, removeDir, startTracker, trackerNetwork } from './support/processes';
import { fuzzSettings } from './support/fuzz-settings';
import {
  CONNECTIONS,
  outcomeCounts,
  RealTracker,
  TRACKER_EXTRA_FLAGS,
  TrackerModel,
  trackerSteps,
  warmStart,
} from './support/tracker-model';

/**
 * Model-based fuzz: random sequences of every tracker command (valid and invalid, from three connections and
 * four users per run) against a real tracker process, each answer checked against the model in
 * support/tracker-model.ts. Deterministic per seed: FUZZ_SEED=<n> replays a run, FUZZ_RUNS=<n> sets how many
 * sequences are tried (default 30 of up to 100 commands, most after a common start).
 */
describe('tracker commands against a model (fuzz)', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = startTracker(net.infoFile, 1, join(net.dir, 'tracker-data'), [...TRACKER_EXTRA_FLAGS]);
    await tracker.waitFor(/listening on/, 15_000);
  }, 30_000);

  afterAll(async () => {
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('answers every command as the model says', async () => {
    const { seed, runs } = fuzzSettings(30);
    let run = 0;
    const warm = fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });
    const steps = fc.noBias(fc.commands(trackerSteps, { maxCommands: 100, size: 'large' }));
    const property = fc.asyncProperty(warm, steps, async (warmUp, cmds) => {
      const real: RealTracker = { port: net.ports[0], conns: [] };
      for (let i = 0; i < CONNECTIONS; i++) real.conns.push(await RawConn.open(net.ports[0]));
      const model = new TrackerModel(`f${run++}`);
      try {
        // the common start runs before the generated steps, checked like them
        if (warmUp) for (const step of warmStart()) await step.run(model, real);
        await fc.asyncModelRun(() => ({ model, real }), cmds);
      } finally {
        real.conns.forEach((c) => c.close());
      }
    });
    try {
      await fc.assert(property, { seed, numRuns: runs });
    } catch (err) {
      const cause = (err as Error).cause;
      const why = cause instanceof Error ? `\n${cause.message}` : '';
      throw new Error(`tracker model fuzz failed; replay with FUZZ_SEED=${seed}\n${(err as Error).message}${why}`);
    }
    if (process.env.FUZZ_STATS) {
      const lines = [...outcomeCounts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${n}\t${k}`);
      console.log(`seed ${seed}, ${runs} runs\n${lines.join('\n')}`);
    }
    expect(tracker.running).toBe(true);
    expect(tracker.stderr).not.toMatch(/ERROR/);
  }, 300_000);
});
