// Writes a Program's CUDA kernels and generated host runner into a directory (what `infer
// compile --target cuda` writes), builds it with build.sh and runs it: for the runner tests.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cudaBackend } from '../../backends/cuda/render.ts';
import type { Program } from '../../program/program.ts';
import { writeCompiled } from '../../cli/writeCompiled.ts';
import { writeCudaRunner } from '../../cli/writeCudaRunner.ts';
import { NVCC } from './emulate.ts';

/** A fresh directory holding the program's kernels, manifest and runner sources. */
export function writeRunner(program: Program, prefix = 'infer-runner-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const w = writeCompiled(dir, 'test', program, cudaBackend, 'cu');
  writeCudaRunner(dir, program, w.written);
  return dir;
}

export type BuildMode = '--emu' | '--asan' | '--cuda';

/** Runs build.sh; throws with the compiler's messages on failure. */
export function build(dir: string, mode: BuildMode): void {
  try {
    execFileSync('sh', [join(dir, 'build.sh'), mode], { stdio: 'pipe', env: { ...process.env, NVCC } });
  } catch (e) {
    const err = e as { stderr?: Buffer; stdout?: Buffer };
    throw new Error(`build.sh ${mode} failed:\n${err.stderr?.toString() ?? ''}${err.stdout?.toString() ?? ''}`);
  }
}

export interface RunResult { readonly status: number | null; readonly stdout: string; readonly stderr: string }

/** Runs runner-emu (or runner-emu-asan) with `args`; env selects the emulation's replay orders. */
export function runRunner(dir: string, args: readonly string[], o: { asan?: boolean; reverseBlocks?: boolean; reverseThreads?: boolean } = {}): RunResult {
  const r = spawnSync(join(dir, o.asan ? 'runner-emu-asan' : 'runner-emu'), args, {
    encoding: 'utf8', timeout: 600_000,
    env: { ...process.env, CUDA_EMU_BLOCK_ORDER: o.reverseBlocks ? 'reverse' : 'forward', CUDA_EMU_THREAD_ORDER: o.reverseThreads ? 'reverse' : 'forward' },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The runner's --json output, failing with its stderr when it did not exit with `status` (0: every sequence ended normally). */
export function runJson(dir: string, args: readonly string[], o: Parameters<typeof runRunner>[2] = {}, status = 0): Record<string, unknown> {
  const r = runRunner(dir, [...args, '--json'], o);
  if (r.status !== status) throw new Error(`runner exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
