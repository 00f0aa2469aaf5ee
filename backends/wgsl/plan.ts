// What a WGSL kernel plan is (a template, its compile-time constants, the launch shape and
// how each binding is typed), and the small helpers every plan builder shares.
import type { GridDim } from '../backend.ts';
import type { TemplateName } from './templates.ts';

export interface Plan {
  readonly template: TemplateName;
  /** Suffix of the variant's key ('' for the only variant). */
  readonly variant: string;
  readonly minTokens: number;
  readonly context: Record<string, unknown>;
  readonly workgroup: [number, number, number];
  readonly grid: [GridDim, GridDim, GridDim];
  /** f32 bindings read as array<vec4<f32>>; every other binding's type is the Program's (bindingElementType). */
  readonly vec4Bindings: readonly string[];
  /** f16 weight bindings read as array<vec4<f16>> (the device has shader-f16; the source then enables f16). */
  readonly f16Bindings?: readonly string[];
  /** The source uses subgroup built-ins (the target has a fixed subgroupSize; the source then enables subgroups). */
  readonly subgroups?: boolean;
}

export const ROW_WG = 64;
export const ONE: GridDim = { tokensPerGroup: 0, groups: 1 };
export const PER_TOKEN: GridDim = { tokensPerGroup: 1, groups: 1 };
export const cdiv = (a: number, b: number) => Math.ceil(a / b);
export const clampPow2 = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, 2 ** Math.ceil(Math.log2(Math.max(1, n)))));
