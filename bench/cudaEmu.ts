// Speed of the CUDA emulation (backends/cuda/emu): milliseconds per block of 256 threads for
// the backend's matmul GEMV (tiny-llama's and llama-20m's shapes, each block a row-slice
// with 8 warp-shuffle reductions of 5 steps each). The
// former emulation (an OS thread per CUDA thread) took about 25 ms per block of 256 on an
// idle machine; figures here are from the machine this runs on, as it is loaded.
//   node --import tsx bench/cudaEmu.ts
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cudaBackend } from '../backends/cuda/render.ts';
import { kernelKey, type KernelSpec } from '../program/kernels.ts';
import { emuCompileArgs } from '../backends/cuda/emu/emuBuild.ts';

const SHAPES: readonly { K: number; N: number }[] = [{ K: 64, N: 256 }, { K: 512, N: 4096 }];

function timeKernel(spec: Extract<KernelSpec, { kind: 'matmul' }>): { blocks: number; msPerBlock: number } {
  const r = cudaBackend.render(kernelKey(spec), spec)[0];
  const blocks = Math.ceil(spec.N / 8);
  const dir = mkdtempSync(join(tmpdir(), 'infer-emu-bench-'));
  try {
    writeFileSync(join(dir, 'kernel.cu'), r.source);
    writeFileSync(join(dir, 'main.cpp'), [
      '#include <chrono>', '#include <cstdio>', '#include <vector>', '#include "kernel.cu"',
      'int main() {',
      `  std::vector<float> x(${spec.K}, 0.5f), w(${spec.K * spec.N}, 0.25f), out(${spec.N});`,
      '  const Step step{1u, 0u, 0u, 0u};',
      '  double best = 1e30;',
      '  for (int rep = 0; rep < 3; rep++) {',
      '    const auto t0 = std::chrono::steady_clock::now();',
      `    emu_launch(dim3(${blocks}), dim3(${r.workgroup[0]}), [&] { ${r.entry}(step, x.data(), w.data(), out.data()); });`,
      '    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());',
      '  }',
      `  std::printf("%.4f\\n", best / ${blocks});`,
      '}',
    ].join('\n'));
    execFileSync('g++', [...emuCompileArgs(), '-o', join(dir, 'run'), join(dir, 'main.cpp')], { cwd: dir, stdio: 'pipe' });
    return { blocks, msPerBlock: Number(execFileSync(join(dir, 'run'), { encoding: 'utf8' }).trim()) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = SHAPES.map(({ K, N }) => ({ K, N, ...timeKernel({ kind: 'matmul', K, N, prologue: 'none', eps: 0, residual: false }) }));
console.log('| matmul GEMV K x N | blocks of 256 | ms per block (best of 3) |');
console.log('|---|---|---|');
for (const r of rows) console.log(`| ${r.K} x ${r.N} | ${r.blocks} | ${r.msPerBlock.toFixed(4)} |`);
