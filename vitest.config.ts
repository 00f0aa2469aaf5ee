// Test configuration. Test files run in forked child processes started with
// `--no-opt`: Dawn (WebGPU in node) crashes under V8's optimising compiler in hot
// dispatch loops (see test/gpu/repro-noopt.mjs), and every GPU test drives Dawn.
// Two workers for the two cores: lavapipe already spreads one dispatch over every
// core, so more workers only oversubscribe them.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fixes fast-check's seed (INFER_TEST_SEED overrides it) and prints it when a test fails.
    setupFiles: ['test/setup.ts'],
    pool: 'forks',
    execArgv: ['--no-opt'],
    maxWorkers: 2,
    // Software WebGPU compiles a pipeline per kernel shape; property tests compile many.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
