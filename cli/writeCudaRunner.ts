// `infer compile --target cuda` also writes the model's host runner next to its kernels:
// host/ (the generated tables and launchers, the runner's fixed sources), emu/ (the CPU
// emulation headers) and build.sh, so the directory builds on a machine with only g++ or
// nvcc (backends/cuda/runner/generate.ts says what is generated and why it is safe).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cudaRunnerFiles } from '../backends/cuda/runner/generate.ts';
import type { Program } from '../program/program.ts';
import { randomTensorPlan } from '../runtime/weights/random.ts';
import type { WrittenKernel } from './writeCompiled.ts';

/** Writes the runner for `program` into `out` (whose kernel files `kernels` names); returns the files written. */
export function writeCudaRunner(out: string, program: Program, kernels: readonly WrittenKernel[]): number {
  const w = program.model.weights;
  const random = w.binding === 'random' ? (name: string, shape: readonly number[]) => randomTensorPlan(name, shape, w.seed) : null;
  const files = cudaRunnerFiles(program, kernels, random);
  for (const [path, text] of files) {
    mkdirSync(dirname(join(out, path)), { recursive: true });
    writeFileSync(join(out, path), text);
  }
  chmodSync(join(out, 'build.sh'), 0o755);
  return files.size;
}
