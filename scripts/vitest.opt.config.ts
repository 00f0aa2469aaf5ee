// Temporary vitest config for scripts/stress-opt.mjs: vitest.config.ts with V8's optimising
// compiler ON in the test workers (no --no-opt; INFER_ALLOW_OPT=1 so device.ts assertNoOpt
// passes). A setup file records each worker's pid and execArgv to $STRESS_VITEST_LOG, so
// the stress script can check that no worker ran with --no-opt.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from '../vitest.config.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
export default defineConfig({
  root,
  test: {
    ...base.test,
    execArgv: (base.test?.execArgv ?? []).filter((a) => a !== '--no-opt' && a !== '--jitless'),
    env: { ...base.test?.env, INFER_ALLOW_OPT: '1' },
    setupFiles: [fileURLToPath(new URL('./vitest.opt.setup.ts', import.meta.url))],
  },
});
