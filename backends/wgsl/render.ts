// The WGSL backend: KernelSpec -> WGSL variants, as the Backend interface asks.
// Bindings are the spec's binding names in order (`bindingNames(spec)`), then the
// step uniform `step`; the source declares exactly these, from the same list, so the
// two can never disagree. Every variant's entry point is `main`.
import { GPU_TARGET, type Backend, type RenderedBinding, type RenderedKernel, type Target } from '../backend.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import { bindingElementType, bindingNames, writtenBindings } from '../../program/kernels.ts';
import { STEP_BINDING, STEP_UNIFORM_FIELDS } from '../../program/stepUniform.ts';
import { renderExpr, WGSL_DIALECT, inputCount } from '../cstyle/expr.ts';
import { plansFor, TILED_MIN_TOKENS } from './kernels.ts';
import { fill, type BindingDecl } from './templates.ts';
import { positiveInt } from '../cstyle/literal.ts';

export { TILED_MIN_TOKENS };


export const wgslBackend: Backend = {
  name: 'wgsl',
  render(key: string, spec: KernelSpec, target: Target = GPU_TARGET): RenderedKernel[] {
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`kernel key ${JSON.stringify(key)} has characters outside [A-Za-z0-9_.-]`);
    const names = bindingNames(spec);
    const written = new Set(writtenBindings(spec));
    const bindings: RenderedBinding[] = [
      ...names.map((name): RenderedBinding => ({ name, access: written.has(name) ? 'read_write' : 'read' })),
      { name: STEP_BINDING, access: 'uniform' },
    ];
    const exprContext = spec.kind === 'elementwise' ? elementwiseContext(spec) : {};
    return plansFor(spec, target).map((plan) => {
      const vec4 = new Set(plan.vec4Bindings), f16 = new Set(plan.f16Bindings ?? []);
      const decls: BindingDecl[] = bindings.map((b) => b.access === 'uniform'
        ? { name: b.name, space: 'uniform', type: 'Step' }
        : {
            name: b.name, space: `storage, ${b.access}`,
            type: `array<${f16.has(b.name) ? 'vec4<f16>' : elementDecl(spec, b.name, vec4)}>`,
          });
      const body = fill(plan.template, { ...plan.context, ...exprContext, kind: spec.kind, bindings: decls, stepFields: STEP_UNIFORM_FIELDS });
      const enables = [...(f16.size > 0 ? ['enable f16;\n'] : []), ...(plan.subgroups ? ['enable subgroups;\n'] : [])];
      const source = enables.join('') + body;
      return {
        key: plan.variant ? `${key}.${plan.variant}` : key,
        source, entry: 'main', bindings, workgroup: plan.workgroup, grid: plan.grid, minTokens: plan.minTokens,
      };
    });
  },
};

/** Renders every kernel of a program once (identical kernels share a key). */
export function renderAll(kernels: readonly { key: string; spec: KernelSpec }[]): Map<string, RenderedKernel[]> {
  return new Map(kernels.map(({ key, spec }) => [key, wgslBackend.render(key, spec)]));
}

function elementwiseContext(spec: Extract<KernelSpec, { kind: 'elementwise' }>) {
  if (inputCount(spec.expr) > spec.inputs) throw new Error(`elementwise expression reads input ${inputCount(spec.expr) - 1} of ${spec.inputs}`);
  // e is the element's index within its token's row (elementwise.hbs).
  // A per-token input (one number per token) is read at the token, t.
  const { lines, result } = renderExpr(spec.expr, WGSL_DIALECT, (i, period, perToken) =>
    (perToken ? `in${i}[t]` : period === undefined ? `in${i}[i]` : `in${i}[e % ${positiveInt('period', period)}u]`));
  return { lines, result };
}

/** A binding's WGSL element type: the Program's (i32, u32, f32), read as vec4<f32> where the plan vectorises an f32 binding. */
function elementDecl(spec: KernelSpec, name: string, vec4: ReadonlySet<string>): string {
  const t = bindingElementType(spec, name);
  return t === 'f32' && vec4.has(name) ? 'vec4<f32>' : t;
}
