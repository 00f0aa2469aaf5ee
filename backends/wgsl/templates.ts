// The handlebars environment of the WGSL backend. Templates are fixed, hand-written
// algorithms; their holes take only compile-time constants, and every number passes
// through a helper that formats it safely (`u` for u32, `i` for i32, `f` for f32).
// Compiled with strict (a missing field is an error, not an empty string) and
// noEscape (WGSL is not HTML).
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import { floatText, uintText } from '../cstyle/literal.ts';

const hb = Handlebars.create();
hb.registerHelper('u', (n: unknown) => uintText(n as number));
hb.registerHelper('i', (n: unknown) => {
  if (!Number.isInteger(n) || Math.abs(n as number) > 0x7fffffff) throw new Error(`not an i32 literal: ${String(n)}`);
  return `${n as number}i`;
});
hb.registerHelper('f', (x: unknown) => floatText(x as number));
/** A comma-separated list of f32 literals, for constant tables (RoPE frequencies). */
hb.registerHelper('floats', (xs: unknown) => (xs as number[]).map((x) => floatText(x)).join(', '));

export const TEMPLATE_NAMES = ['embed', 'rmsnorm', 'matmul_gemv', 'matmul_tiled', 'rope', 'kv_append', 'attention', 'attention_merge', 'elementwise', 'moe_route', 'moe_experts', 'moe_combine', 'softmax', 'attn_scores', 'attn_values'] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

const read = (name: string) => readFileSync(new URL(`./templates/${name}.hbs`, import.meta.url), 'utf8');

for (const partial of ['header', 'rolled', 'rope_fn', 'dequant', 'kv_read']) hb.registerPartial(partial, hb.compile(read(partial), { noEscape: true, strict: true }));
const compiled = new Map<TemplateName, HandlebarsTemplateDelegate>();

/** One declaration line per binding; `header.hbs` turns these into `@group(0) @binding(i)` vars. */
export interface BindingDecl { readonly name: string; readonly space: string; readonly type: string }

export function fill(name: TemplateName, context: Record<string, unknown>): string {
  let t = compiled.get(name);
  if (!t) {
    t = hb.compile(read(name), { noEscape: true, strict: true });
    compiled.set(name, t);
  }
  // Collapse the blank lines left by block helpers so the output reads like hand-written code.
  return t(context).replace(/\n[ \t]*\n([ \t]*\n)+/g, '\n\n');
}
