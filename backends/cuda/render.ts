// The CUDA backend: KernelSpec -> CUDA C++ source, as the Backend interface asks, for every
// kernel kind (plans.ts picks the algorithm and its constants; templates/ hold them). Each
// source is one `struct Kernel` whose members are the step uniform and the spec's bindings in
// order (bindingNames, typed by bindingElementType: the Program's one answer, which the WGSL
// backend declares too), and whose member functions are the kernel and its semantic partials
// (kv_addr / kv_read, dequant, rope_fn: the same names and signatures as the WGSL partials).
// The entry `infer_kernel` takes `const Step step` then the bindings as typed pointers and runs
// the struct. Templates only fill compile-time constants (handlebars, strict, noEscape),
// numbers through the safe literal helpers (backends/cstyle/literal.ts).
import { GPU_TARGET, type Backend, type RenderedBinding, type RenderedKernel, type Target } from '../backend.ts';
import { bindingElementType, bindingNames, writtenBindings, type KernelSpec } from '../../program/kernels.ts';
import { CUDA_DIALECT, inputCount, renderExpr } from '../cstyle/expr.ts';
import { templateEnv } from '../cstyle/templateEnv.ts';
import { STEP_BINDING, STEP_UNIFORM_FIELDS } from '../../program/stepUniform.ts';
import { positiveInt } from '../cstyle/literal.ts';
import { cudaPlans } from './plans.ts';

/** The kernel entry point's name (`main` is reserved in C++). */
export const CUDA_ENTRY = 'infer_kernel';

const env = templateEnv({
  dir: new URL('./templates/', import.meta.url), ext: '.cu.hbs', uintSuffix: 'u', intSuffix: '', floatSuffix: 'f',
  partials: ['header', 'members', 'entry', 'dequant', 'rope_fn', 'kv_addr', 'kv_read', 'row_dot', 'matmul_epilogue'],
});

const C_TYPES = { i32: 'int', u32: 'unsigned', f32: 'float' } as const;

/** The C type of a binding's elements (program/kernels.ts bindingElementType). */
export function cudaElementType(spec: KernelSpec, binding: string): 'int' | 'unsigned' | 'float' {
  return C_TYPES[bindingElementType(spec, binding)];
}

/** `const Step step`, then each binding as a typed pointer (const unless the kernel writes it). */
function declarations(spec: KernelSpec): string[] {
  const written = new Set(writtenBindings(spec));
  return ['const Step step', ...bindingNames(spec).map((b) => `${written.has(b) ? '' : 'const '}${cudaElementType(spec, b)}* __restrict__ ${b}`)];
}

export const cudaBackend: Backend = {
  name: 'cuda',
  render(key: string, spec: KernelSpec, _target: Target = GPU_TARGET): RenderedKernel[] {
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`kernel key ${JSON.stringify(key)} has characters outside [A-Za-z0-9_.-]`);
    const names = bindingNames(spec);
    const written = new Set(writtenBindings(spec));
    const bindings: RenderedBinding[] = [
      ...names.map((name): RenderedBinding => ({ name, access: written.has(name) ? 'read_write' : 'read' })),
      { name: STEP_BINDING, access: 'uniform' },
    ];
    const decls = declarations(spec);
    const common = {
      kind: spec.kind, stepFields: STEP_UNIFORM_FIELDS, entry: CUDA_ENTRY, fields: decls, params: decls.join(', '),
      args: ['step', ...names].join(', '), ...(spec.kind === 'elementwise' ? elementwiseContext(spec) : {}),
    };
    return cudaPlans(spec).map((plan) => ({
      key: plan.variant ? `${key}.${plan.variant}` : key,
      source: env.fill(plan.template, { ...common, ...plan.context, threads: plan.threads }),
      entry: CUDA_ENTRY, bindings, workgroup: [plan.threads, 1, 1], grid: plan.grid, minTokens: plan.minTokens,
    }));
  },
};

function elementwiseContext(spec: Extract<KernelSpec, { kind: 'elementwise' }>) {
  if (inputCount(spec.expr) > spec.inputs) throw new Error(`elementwise expression reads input ${inputCount(spec.expr) - 1} of ${spec.inputs}`);
  // As the WGSL kernel: an input with a period repeats along each token's row (a bias), a
  // per-token input has one element per token (program/kernels.ts ElementwiseExpr).
  return renderExpr(spec.expr, CUDA_DIALECT, (i, period, perToken) =>
    (perToken ? `in${i}[t]` : period === undefined ? `in${i}[i]` : `in${i}[e % ${positiveInt('period', period)}u]`));
}
