// The CUDA emulation (backends/cuda/emu) catches what it claims to: a planted bug of each
// class is caught (missing barrier: poisoned shared memory; out-of-bounds read: the ASan
// build; inter-block race: reverse block replay; divergent barrier or warp operation:
// reported, not hung), while the correct twin of each kernel passes in every mode. Warp
// operations are checked against their definition, per warp, for several widths.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emuCompileArgs, emuEnv, type EmuOptions } from './emulate.ts';

// Each case is a kernel and the launch that runs it; argv[1] picks one; the output array is printed.
const PROGRAM = String.raw`
#include <cstdio>
#include <cstring>
#include <vector>
constexpr unsigned N = 256;
// Block sums of x: the correct reduction and one with its barrier missing.
__global__ void reduce_ok(const float* x, float* out) {
  __shared__ float s[N];
  s[threadIdx.x] = x[blockIdx.x * N + threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) { float t = 0; for (unsigned i = 0; i < N; i++) t += s[i]; out[blockIdx.x] = t; }
}
__global__ void reduce_no_barrier(const float* x, float* out) {
  __shared__ float s[N];
  s[threadIdx.x] = x[blockIdx.x * N + threadIdx.x];
  if (threadIdx.x == 0) { float t = 0; for (unsigned i = 0; i < N; i++) t += s[i]; out[blockIdx.x] = t; }
}
// Neighbour differences over x's last N elements: in bounds, then reading one past the end of x.
constexpr unsigned LEN = 4 * N;
__global__ void diff_ok(const float* x, float* out) { const unsigned i = LEN - N + threadIdx.x; out[threadIdx.x] = i + 1 < LEN ? x[i + 1] - x[i] : 0.0f; }
__global__ void diff_oob(const float* x, float* out) { const unsigned i = LEN - N + threadIdx.x; out[threadIdx.x] = x[i + 1] - x[i]; }
__global__ void shared_oob(const float* x, float* out) {
  __shared__ float s[N];
  s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x + 1];
}
// Running sums over blocks: each block adds the previous block's total (written by that
// block: an inter-block race), and the race-free version that recomputes it.
__global__ void scan_racy(const float* x, float* out) {
  if (threadIdx.x != 0) return;
  const float prev = blockIdx.x ? out[blockIdx.x - 1] : 0.0f;
  out[blockIdx.x] = prev + x[blockIdx.x];
}
__global__ void scan_ok(const float* x, float* out) {
  if (threadIdx.x != 0) return;
  float t = 0; for (unsigned b = 0; b <= blockIdx.x; b++) t += x[b];
  out[blockIdx.x] = t;
}
// Divergence: a barrier some threads never reach, two barriers, a shuffle half a warp skips.
__global__ void barrier_after_exit(const float* x, float* out) { if (threadIdx.x >= 100) return; __syncthreads(); out[threadIdx.x] = x[threadIdx.x]; }
__global__ void two_barriers(const float* x, float* out) {
  if (threadIdx.x % 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = x[threadIdx.x];
}
__global__ void shuffle_half_warp(const float* x, float* out) {
  float v = x[threadIdx.x];
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}
// Warp operations, every lane's results side by side: idx / xor / down / up with width 32 and 8, ballot.
__global__ void warp_ops(const float* x, float* out) {
  const unsigned t = threadIdx.x;
  const float v = x[t];
  out[t * 9 + 0] = __shfl_sync(0xffffffffu, v, 3);
  out[t * 9 + 1] = __shfl_sync(0xffffffffu, v, 5, 8);
  out[t * 9 + 2] = __shfl_xor_sync(0xffffffffu, v, 6);
  out[t * 9 + 3] = __shfl_xor_sync(0xffffffffu, v, 4, 8);
  out[t * 9 + 4] = __shfl_down_sync(0xffffffffu, v, 3);
  out[t * 9 + 5] = __shfl_down_sync(0xffffffffu, v, 3, 8);
  out[t * 9 + 6] = __shfl_up_sync(0xffffffffu, v, 2);
  out[t * 9 + 7] = __shfl_up_sync(0xffffffffu, v, 2, 8);
  out[t * 9 + 8] = float(__ballot_sync(0xffffffffu, v > 0.0f) & 0xffffu);
}

int main(int argc, char** argv) {
  const char* c = argv[1];
  const unsigned blocks = 4;
  // Exact-size heap buffers: one past the end is outside the allocation.
  float* x = new float[blocks * N];
  for (unsigned i = 0; i < blocks * N; i++) x[i] = float(int(i * 7919u % 23u) - 11);
  const unsigned outN = blocks * N * 9;
  float* out = new float[outN];
  std::memset(out, 0, outN * sizeof(float));
  unsigned shown = 0;
#define CASE(name, grid, shownN) if (!std::strcmp(c, #name)) { emu_launch(dim3(grid), dim3(N), [&] { name(x, out); }, #name); shown = shownN; }
  CASE(reduce_ok, blocks, blocks) CASE(reduce_no_barrier, blocks, blocks)
  CASE(diff_ok, 1, N) CASE(diff_oob, 1, N) CASE(shared_oob, 1, N)
  CASE(scan_racy, blocks * N, blocks * N) CASE(scan_ok, blocks * N, blocks * N)
  CASE(barrier_after_exit, 1, N) CASE(two_barriers, 1, N) CASE(shuffle_half_warp, 1, N)
  CASE(warp_ops, 1, N * 9)
  for (unsigned i = 0; i < shown; i++) std::printf("%s%.9g", i ? " " : "", out[i]);
  std::printf("\n");
  delete[] x;
  delete[] out;
  return 0;
}
`;

const N = 256, BLOCKS = 4;
const X = Float64Array.from({ length: BLOCKS * N }, (_, i) => ((i * 7919) % 23) - 11);

let dir = '';
const exe = (o: EmuOptions) => join(dir, o.asan ? 'cases-asan' : 'cases');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'infer-emu-'));
  writeFileSync(join(dir, 'cases.cpp'), PROGRAM);
  for (const asan of [false, true]) execFileSync('g++', [...emuCompileArgs({ asan }), '-o', exe({ asan }), join(dir, 'cases.cpp')], { stdio: 'pipe' });
}, 300_000);
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** Runs one case; a hang would be a bug of its own, so a timeout fails the test. */
function run(name: string, o: EmuOptions = {}): { status: number | null; values: number[]; stderr: string } {
  const r = spawnSync(exe(o), [name], { env: emuEnv(o), encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  const values = r.status === 0 ? r.stdout.trim().split(' ').map(Number) : [];
  return { status: r.status, values, stderr: r.stderr };
}

const MODES: EmuOptions[] = [{}, { reverseBlocks: true }, { reverseThreads: true }, { reverseBlocks: true, reverseThreads: true }, { asan: true }];
const label = (o: EmuOptions) => JSON.stringify(o);

describe('CUDA emulation: planted bugs are caught, correct kernels pass', () => {
  it('missing barrier: the reduction without __syncthreads reads poisoned shared memory', () => {
    const want = Array.from({ length: BLOCKS }, (_, b) => X.slice(b * N, (b + 1) * N).reduce((a, v) => a + v, 0));
    for (const o of MODES) expect(run('reduce_ok', o).values, label(o)).toEqual(want);
    const bad = run('reduce_no_barrier');
    expect(bad.status).toBe(0);
    expect(bad.values.every((v) => Number.isNaN(v))).toBe(true);
  });

  it('out-of-bounds read: the ASan build reports a heap overflow on a device buffer and a global overflow on shared memory', () => {
    const L = BLOCKS * N;
    const want = Array.from({ length: N }, (_, t) => (L - N + t + 1 < L ? X[L - N + t + 1] - X[L - N + t] : 0));
    for (const o of MODES) expect(run('diff_ok', o).values, label(o)).toEqual(want);
    const heap = run('diff_oob', { asan: true });
    expect(heap.status).not.toBe(0);
    expect(heap.stderr).toMatch(/AddressSanitizer: heap-buffer-overflow/);
    const shared = run('shared_oob', { asan: true });
    expect(shared.status).not.toBe(0);
    expect(shared.stderr).toMatch(/AddressSanitizer: global-buffer-overflow/);
  });

  it('inter-block race: reverse block replay changes the racy scan, not the race-free one', () => {
    const want: number[] = [];
    X.reduce((a, v) => { want.push(a + v); return a + v; }, 0);
    for (const o of MODES) expect(run('scan_ok', o).values, label(o)).toEqual(want);
    expect(run('scan_racy').values).toEqual(want); // in launch order the race is invisible
    expect(run('scan_racy', { reverseBlocks: true }).values).not.toEqual(want);
  });

  it('divergent barriers and warp operations are reported with exit status 70, never hang', () => {
    const exited = run('barrier_after_exit');
    expect(exited.status).toBe(70);
    expect(exited.stderr).toMatch(/barrier_after_exit: divergent __syncthreads in block \(0,0,0\): 100 threads wait at the barrier of line \d+, 156 threads exited/);
    const two = run('two_barriers');
    expect(two.status).toBe(70);
    expect(two.stderr).toMatch(/two_barriers: divergent __syncthreads .*waits at the barrier of line \d+, thread \d+ at line \d+/);
    const shuffle = run('shuffle_half_warp', { reverseThreads: true });
    expect(shuffle.status).toBe(70);
    expect(shuffle.stderr).toMatch(/shuffle_half_warp: divergent warp operation .*lanes 0x0000ffff of warp \d+ wait in a shuffle/);
  });

  it('warp shuffles and ballot act within their warp and width, as CUDA defines them', () => {
    const want: number[] = [];
    for (let t = 0; t < N; t++) {
      const lane = t % 32, warp = t - lane, v = (l: number) => X[warp + l];
      const seg = (w: number) => lane - (lane % w);
      const down = (d: number, w: number) => v((lane % w) + d < w ? lane + d : lane);
      const up = (d: number, w: number) => v((lane % w) >= d ? lane - d : lane);
      let ballot = 0;
      for (let l = 0; l < 16; l++) if (v(l) > 0) ballot |= 1 << l;
      want.push(v(3), v(seg(8) + 5), v(lane ^ 6), v(lane ^ 4), down(3, 32), down(3, 8), up(2, 32), up(2, 8), ballot);
    }
    for (const o of MODES) expect(run('warp_ops', o).values, label(o)).toEqual(want);
  });
});
