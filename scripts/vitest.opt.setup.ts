// Setup file of scripts/vitest.opt.config.ts: logs this worker's pid and execArgv, and
// fails if the worker still runs with --no-opt (the override did not take).
import { appendFileSync } from 'node:fs';

const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
if (process.env.STRESS_VITEST_LOG) appendFileSync(process.env.STRESS_VITEST_LOG, `${process.pid} ${JSON.stringify(process.execArgv)}\n`);
if (flags.includes('--no-opt') || flags.includes('--jitless')) throw new Error(`worker ${process.pid} runs with --no-opt: ${flags.join(' ')}`);
