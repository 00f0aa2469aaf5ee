// The CUDA and WGSL renderings of one Program bind the same buffers: for every kernel of every
// example (as written, and with its params kept as f16 / K-quant blocks as a weight file would
// keep them), and the extra variants, both backends give the same variants, the same binding
// names in the same order with the same access, and their sources declare each binding with
// the same element type (parsed from the CUDA entry's parameters and the WGSL declarations),
// which is the Program's bindingElementType.
import { expect, it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { bindingElementType, kernelKey, type ElementType } from '../../program/kernels.ts';
import { compactProgramKernels, EXTRA_SPECS, exampleKernels } from './specs.ts';

const FROM_CUDA: Record<string, ElementType> = { int: 'i32', unsigned: 'u32', float: 'f32' };
const FROM_WGSL: Record<string, ElementType> = { i32: 'i32', u32: 'u32', f32: 'f32', 'vec4<f32>': 'f32' };

/** name -> (element type, written) from `infer_kernel(const Step step, const float* __restrict__ x, ...)`. */
function cudaParams(source: string): Map<string, { type: ElementType; written: boolean }> {
  const m = /\binfer_kernel\(([^)]*)\)/.exec(source);
  if (!m) throw new Error('no CUDA entry');
  const out = new Map<string, { type: ElementType; written: boolean }>();
  for (const p of m[1].split(',').slice(1)) {
    const d = /^\s*(const )?(int|unsigned|float)\* __restrict__ (\w+)\s*$/.exec(p);
    if (!d) throw new Error(`unexpected CUDA parameter ${p}`);
    out.set(d[3], { type: FROM_CUDA[d[2]], written: !d[1] });
  }
  return out;
}

/** name -> (element type, written) from `@group(0) @binding(i) var<storage, read> x: array<vec4<f32>>;`. */
function wgslParams(source: string): Map<string, { type: ElementType; written: boolean }> {
  const out = new Map<string, { type: ElementType; written: boolean }>();
  for (const d of source.matchAll(/var<storage, (read|read_write)> (\w+): array<(\w+|vec4<f32>)>;/g)) out.set(d[2], { type: FROM_WGSL[d[3]], written: d[1] === 'read_write' });
  return out;
}

it('CUDA and WGSL bind the same buffers with the same element types, kernel by kernel', () => {
  const compact = compactProgramKernels();
  // Each compact type reaches the embedding, the matmul and (f16, tiny-mixtral) the experts.
  for (const t of ['f16', 'q4_K', 'q5_K', 'q6_K']) expect(new Set(compact.filter((k) => 'wtype' in k.spec && k.spec.wtype === t).map((k) => k.spec.kind)), t).toEqual(new Set(t === 'f16' ? ['embed', 'matmul', 'moe_experts'] : ['embed', 'matmul']));
  const kernels = [...exampleKernels(), ...compact, ...EXTRA_SPECS.map((spec) => ({ example: 'extra', key: kernelKey(spec), spec }))];
  let checked = 0;
  for (const { key, spec } of kernels) {
    const cuda = cudaBackend.render(key, spec), wgsl = wgslBackend.render(key, spec);
    expect(cuda.map((v) => [v.key, v.minTokens]), key).toEqual(wgsl.map((v) => [v.key, v.minTokens]));
    cuda.forEach((c, i) => {
      const w = wgsl[i];
      expect(c.bindings, c.key).toEqual(w.bindings);
      const cp = cudaParams(c.source), wp = wgslParams(w.source);
      const storage = c.bindings.filter((b) => b.access !== 'uniform');
      expect([...cp.keys()], c.key).toEqual(storage.map((b) => b.name));
      expect([...wp.keys()], w.key).toEqual(storage.map((b) => b.name));
      for (const b of storage) {
        const want = { type: bindingElementType(spec, b.name), written: b.access === 'read_write' };
        expect(cp.get(b.name), `${c.key} ${b.name} (CUDA)`).toEqual(want);
        expect(wp.get(b.name), `${w.key} ${b.name} (WGSL)`).toEqual(want);
        checked++;
      }
    });
  }
  expect(checked).toBeGreaterThan(500);
});
