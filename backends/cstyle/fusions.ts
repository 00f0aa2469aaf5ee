// The holes of the fusions that reach into other kernels, shared by both backends' templates.
// The matmul epilogue's, shared by the WGSL and CUDA matmul kernels (each
// backend's matmul_epilogue partial): a bias [outCols] read at the part's columns, then
// soft-capping y -> CAP * tanh(y / CAP), with tanh written as the dialect's formula (clamped
// where GPU tanh overflows), before any residual add (program/kernels.ts `matmul`).
import type { KernelSpec } from '../../program/kernels.ts';
import { unaryFormula, type CDialect } from './expr.ts';

export function epilogueContext(spec: Extract<KernelSpec, { kind: 'matmul' }>, d: CDialect) {
  if (spec.softcap !== undefined && !(spec.softcap > 0 && Number.isFinite(spec.softcap))) throw new Error(`matmul softcap must be a positive number, got ${spec.softcap}`);
  const softcap = spec.softcap !== undefined;
  return { epilogue: spec.bias === true || softcap, bias: spec.bias === true, softcap, cap: spec.softcap ?? 0, tanhA: unaryFormula('tanh', 'a', d) };
}

/** A per-head RMS norm folded into rope or kv_append (fuseQkNorm.ts): its eps, or off. */
export function normContext(eps: number | undefined) {
  if (eps === undefined) return { norm: false, eps: 0 };
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new Error(`rmsnorm eps must be >= 0, got ${eps}`);
  return { norm: true, eps };
}
