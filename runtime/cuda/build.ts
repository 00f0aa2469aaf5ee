// The host runner a CudaDevice starts, built on demand: the generated runner sources
// (backends/cuda/runner/generate.ts) for every kernel the programs use (a target and its
// draft share one runner, so a self-draft can bind the target's weights), written to a
// cache directory named by a hash of every generated file and the build mode, built once
// with build.sh there (--emu: g++ against the CPU emulation; --cuda: nvcc). A build goes to
// a directory of its own and is renamed into place, so two processes never see half a build.
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Backend } from '../../backends/backend.ts';
import { cudaRunnerFiles, type RunnerKernel } from '../../backends/cuda/runner/generate.ts';
import type { Program } from '../../program/program.ts';

export type CudaBuildMode = 'emu' | 'cuda';

export class CudaBuildError extends Error {}

export interface BuiltRunner { readonly dir: string; readonly binary: string; readonly mode: CudaBuildMode; readonly cached: boolean }

/** Where runners are cached: $INFER_CUDA_CACHE, else $XDG_CACHE_HOME/infer/cuda-runners (~/.cache by default). */
export function cudaCacheRoot(): string {
  return process.env.INFER_CUDA_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'infer', 'cuda-runners');
}

/** Whether a CUDA GPU and its driver answer (nvidia-smi runs and exits 0). */
export function hasCudaGpu(): boolean {
  const r = spawnSync('nvidia-smi', ['-L'], { stdio: 'ignore', timeout: 10_000 });
  return !r.error && r.status === 0;
}

/** Every kernel variant of the programs, once per key, with the file each is written to. */
function runnerKernels(programs: readonly Program[], cuda: Backend): RunnerKernel[] {
  const seen = new Set<string>(), files = new Set<string>();
  const out: RunnerKernel[] = [];
  for (const p of programs) for (const { key, spec } of p.kernels) {
    if (seen.has(key)) continue;
    seen.add(key);
    const variants = cuda.render(key, spec).map((rendered) => {
      // As cli/writeCompiled.ts names them: the token bound disambiguates a reused variant key.
      let file = `${rendered.key}.cu`;
      if (files.has(file)) file = `${rendered.key}.t${rendered.minTokens}.cu`;
      files.add(file);
      return { file, rendered };
    });
    out.push({ key, spec, variants });
  }
  return out;
}

/** The runner's files for the programs (the first one's tables; every program's kernels). */
export function serveRunnerFiles(programs: readonly Program[], cuda: Backend): Map<string, string> {
  if (!programs.length) throw new CudaBuildError('no program to build a CUDA runner for');
  const kernels = runnerKernels(programs, cuda);
  // No seeded-weight tables: a served runner gets every weight through uploads.
  const files = cudaRunnerFiles(programs[0], kernels, null);
  for (const k of kernels) for (const v of k.variants) files.set(v.file, v.rendered.source);
  return files;
}

function compilerFound(command: string): boolean {
  const r = spawnSync(command, ['--version'], { stdio: 'ignore', timeout: 30_000 });
  return !r.error;
}

/** Builds (or finds in the cache) the runner for the programs in `mode`. */
export async function buildServeRunner(programs: readonly Program[], cuda: Backend, mode: CudaBuildMode, root = cudaCacheRoot()): Promise<BuiltRunner> {
  const files = serveRunnerFiles(programs, cuda);
  const h = createHash('sha256').update(mode);
  for (const [path, text] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(`\0${path}\0${text.length}\0`).update(text);
  const dir = join(root, h.digest('hex').slice(0, 24));
  const binary = join(dir, mode === 'emu' ? 'runner-emu' : 'runner');
  if (existsSync(binary)) return { dir, binary, mode, cached: true };
  const compiler = mode === 'emu' ? (process.env.CXX ?? 'g++') : (process.env.NVCC ?? 'nvcc');
  if (!compilerFound(compiler)) {
    throw new CudaBuildError(mode === 'emu'
      ? `building the CUDA runner's CPU emulation needs a C++17 compiler: '${compiler}' was not found (install g++ or set CXX)`
      : `a CUDA GPU answers nvidia-smi, but the CUDA compiler '${compiler}' was not found (install the CUDA toolkit or set NVCC; --backend cuda-emu runs the CPU emulation instead)`);
  }
  const tmp = `${dir}.build-${process.pid}-${Date.now()}`;
  try {
    for (const [path, text] of files) {
      mkdirSync(dirname(join(tmp, path)), { recursive: true });
      writeFileSync(join(tmp, path), text);
    }
    await new Promise<void>((resolve, reject) => execFile('sh', [join(tmp, 'build.sh'), mode === 'emu' ? '--emu' : '--cuda'], { maxBuffer: 64 * 1024 * 1024 }, (e, _out, err) => {
      if (e) reject(new CudaBuildError(`building the CUDA runner in ${tmp} failed (build.sh --${mode}):\n${String(err).slice(-4000)}`));
      else resolve();
    }));
    try { renameSync(tmp, dir); } catch (e) {
      // Another process built the same runner meanwhile: use that one.
      if (!existsSync(binary)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    if (!(e instanceof CudaBuildError)) rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir, binary, mode, cached: false };
}
