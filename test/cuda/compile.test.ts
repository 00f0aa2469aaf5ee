// Every CUDA kernel of every example (fused and unfused), and the variants in EXTRA_SPECS,
// compiles with nvcc for sm_80 and sm_90 with warnings as errors (ptxas's spill and
// local-memory warnings included), and ptxas reports no spills and no stack frame for any of
// them. nvcc's start-up dominates here, so the kernels go in two batches compiled at once
// (nvccBatch.ts). The per-kernel figures (registers, shared memory) print as a table. Never
// skipped: a missing nvcc fails.
import { expect, it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { kernelKey } from '../../program/kernels.ts';
import { ARCHS, nvccBatch } from './nvccBatch.ts';
import { EXTRA_SPECS, exampleKernels } from './specs.ts';

it('every kernel of every example (and every block-weight and KV-format variant) compiles for sm_80 and sm_90: no warning, no spill, no local memory', async () => {
  const kernels = [...exampleKernels(), ...EXTRA_SPECS.map((spec) => ({ example: 'extra', key: kernelKey(spec), spec }))];
  const sources = kernels.flatMap(({ key, spec }) => cudaBackend.render(key, spec).map((v) => ({ name: v.key, source: v.source, kind: spec.kind })));
  const kindOf = new Map(sources.map((s) => [s.name, s.kind]));
  // Every kind the registry declares for CUDA is in the list.
  expect(new Set(kernels.map((k) => k.spec.kind)).size).toBe(15);
  const half = Math.ceil(sources.length / 2);
  const usage = (await Promise.all([nvccBatch(sources.slice(0, half)), nvccBatch(sources.slice(half))])).flat();
  expect(usage.length).toBe(sources.length * ARCHS.length);
  for (const u of usage) {
    expect(u.spillStores + u.spillLoads, `${u.name} ${u.arch} spills`).toBe(0);
    expect(u.stackBytes, `${u.name} ${u.arch} stack frame`).toBe(0);
  }
  const byKind = new Map<string, number>();
  for (const u of usage) { const kind = kindOf.get(u.name)!; byKind.set(kind, Math.max(byKind.get(kind) ?? 0, u.registers)); }
  console.log(`nvcc: ${sources.length} kernels x ${ARCHS.join(', ')}: 0 bytes spill, 0 bytes stack; most registers by kind: ${[...byKind].map(([k, r]) => `${k} ${r}`).join(', ')}`);
}, 600_000);
