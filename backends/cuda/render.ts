// The CUDA backend: KernelSpec -> CUDA C++ source, as the Backend interface asks, for the
// kernel kinds it has templates for so far (matmul: the decode GEMV with its rmsnorm /
// silu_mul prologues, residual epilogue and q8_0 / q4_0 block weights, which it reads in the
// same device layout as the WGSL kernels). Other kinds throw CudaUnsupported, so a Program
// renders only when every kernel is covered. Parameters are `const Step step` then the
// spec's bindings in order (bindingNames) as typed pointers; the entry is `infer_kernel`.
// Templates only fill compile-time constants (handlebars, strict, noEscape), numbers through
// the safe literal helpers (backends/cstyle/literal.ts).
import { GPU_TARGET, type Backend, type RenderedBinding, type RenderedKernel, type Target } from '../backend.ts';
import { bindingElementType, bindingNames, writtenBindings, type KernelSpec } from '../../program/kernels.ts';
import { CUDA_DIALECT, unaryFormula } from '../cstyle/expr.ts';
import { positiveInt } from '../cstyle/literal.ts';
import { templateEnv } from '../cstyle/templateEnv.ts';
import { STEP_BINDING, STEP_UNIFORM_FIELDS } from '../../program/stepUniform.ts';
import { QBLOCK, QUANT_WORDS_PER_BLOCK, quantWords } from '../../program/quant.ts';

export class CudaUnsupported extends Error {}

/** The kernel entry point's name (`main` is reserved in C++). */
export const CUDA_ENTRY = 'infer_kernel';

const env = templateEnv({
  dir: new URL('./templates/', import.meta.url), ext: '.cu.hbs', uintSuffix: 'u', intSuffix: '', floatSuffix: 'f', partials: ['header'],
});

const C_TYPES = { i32: 'int', u32: 'unsigned', f32: 'float' } as const;

/** The C type of a binding's elements (program/kernels.ts bindingElementType). */
export function cudaElementType(spec: KernelSpec, binding: string): 'int' | 'unsigned' | 'float' {
  return C_TYPES[bindingElementType(spec, binding)];
}

function params(spec: KernelSpec): string {
  const written = new Set(writtenBindings(spec));
  return ['const Step step', ...bindingNames(spec).map((b) => `${written.has(b) ? '' : 'const '}${cudaElementType(spec, b)}* __restrict__ ${b}`)].join(', ');
}

export const cudaBackend: Backend = {
  name: 'cuda',
  render(key: string, spec: KernelSpec, _target: Target = GPU_TARGET): RenderedKernel[] {
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`kernel key ${JSON.stringify(key)} has characters outside [A-Za-z0-9_.-]`);
    if (spec.kind !== 'matmul') throw new CudaUnsupported(`the CUDA backend has no ${spec.kind} kernel yet (it renders matmul so far)`);
    const K = positiveInt('K', spec.K), N = positiveInt('N', spec.N);
    if (spec.wtype && K % QBLOCK) throw new Error(`matmul: ${spec.wtype} weights need K a multiple of ${QBLOCK}, got ${K}`);
    const written = new Set(writtenBindings(spec));
    const bindings: RenderedBinding[] = [
      ...bindingNames(spec).map((name): RenderedBinding => ({ name, access: written.has(name) ? 'read_write' : 'read' })),
      { name: STEP_BINDING, access: 'uniform' },
    ];
    const warps = 8;
    const source = env.fill('matmul_gemv', {
      kind: spec.kind, stepFields: STEP_UNIFORM_FIELDS, entry: CUDA_ENTRY, params: params(spec), K, N, outCols: spec.outCols ?? N, colOffset: spec.colOffset ?? 0, warps, eps: spec.eps, residual: spec.residual,
      vec4: K % 4 === 0, quant: !!spec.wtype, wq8: spec.wtype === 'q8_0', wq4: spec.wtype === 'q4_0',
      soff: spec.wtype ? quantWords(spec.wtype, K * N) : 0, wtypeText: spec.wtype ?? 'f32',
      qblock: QBLOCK, qwords: spec.wtype ? QUANT_WORDS_PER_BLOCK[spec.wtype] : 0,
      proNone: spec.prologue === 'none', proRmsnorm: spec.prologue === 'rmsnorm', proSiluMul: spec.prologue === 'silu_mul',
      prologueText: { none: 'x', rmsnorm: 'rmsnorm(x) * norm', silu_mul: 'silu(gate) * up' }[spec.prologue],
      siluG: unaryFormula('silu', 'g', CUDA_DIALECT),
    });
    return [{
      key, source, entry: CUDA_ENTRY, bindings, workgroup: [warps * 32, 1, 1],
      grid: [{ tokensPerGroup: 0, groups: Math.ceil(N / warps) }, { tokensPerGroup: 1, groups: 1 }, { tokensPerGroup: 0, groups: 1 }], minTokens: 1,
    }];
  },
};
