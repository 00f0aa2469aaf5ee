// Test configuration. Test files run in forked child processes (Dawn's native module
// is safest with a process of its own per file). Two workers for the two cores: lavapipe already spreads one dispatch over every
// core, so more workers only oversubscribe them.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fixes fast-check's seed (INFER_TEST_SEED overrides it) and prints it when a test fails.
    setupFiles: ['test/setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    // Software WebGPU compiles a pipeline per kernel shape; property tests compile many.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
