// Every fast-check property runs from one fixed seed (vitest.config.ts setupFiles), so a
// CI run is reproducible and cannot fail on a draw no one can replay. INFER_TEST_SEED
// picks another seed (any 32-bit integer, or `random` to draw one); fast-check's failure
// message names the seed and the shrunk path (`{ seed, path, endOnFailure }`), and a
// failing test also prints the INFER_TEST_SEED that reproduces the whole run.
import fc from 'fast-check';
import { beforeEach } from 'vitest';

/** The suite's default seed: fixed, so CI draws the same cases every time. */
export const DEFAULT_TEST_SEED = 20240611;

function testSeed(): number {
  const env = process.env.INFER_TEST_SEED;
  if (env === undefined || env === '') return DEFAULT_TEST_SEED;
  if (env === 'random') return (Math.random() * 2 ** 32) | 0;
  const n = Number(env);
  if (!Number.isInteger(n)) throw new Error(`INFER_TEST_SEED must be an integer or "random", got ${JSON.stringify(env)}`);
  return n | 0;
}

const seed = testSeed();
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => console.error(`[infer] fast-check seed of this run: INFER_TEST_SEED=${seed} (default ${DEFAULT_TEST_SEED})`));
});
