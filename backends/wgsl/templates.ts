// The WGSL backend's templates (templates/*.hbs) in the shared C-style template
// environment (backends/cstyle/templateEnv.ts): u32 literals end in 'u', i32 in 'i'.
import { templateEnv } from '../cstyle/templateEnv.ts';

export const TEMPLATE_NAMES = ['embed', 'rmsnorm', 'matmul_gemv', 'matmul_tiled', 'rope', 'kv_append', 'attention', 'attention_merge', 'elementwise', 'moe_route', 'moe_experts', 'moe_combine', 'softmax', 'attn_scores', 'attn_values', 'argmax', 'slice'] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

const env = templateEnv({
  dir: new URL('./templates/', import.meta.url), ext: '.hbs', uintSuffix: 'u', intSuffix: 'i', floatSuffix: '',
  partials: ['header', 'rolled', 'rope_fn', 'dequant', 'kv_addr', 'kv_read', 'matmul_epilogue'],
});

/** One declaration line per binding; `header.hbs` turns these into `@group(0) @binding(i)` vars. */
export interface BindingDecl { readonly name: string; readonly space: string; readonly type: string }

export function fill(name: TemplateName, context: Record<string, unknown>): string {
  return env.fill(name, context);
}
