// Every backend, looked up by name. Each entry says which kernel kinds its backend renders,
// so a caller can tell what a Program lacks before rendering anything; the renderer itself
// loads on first use (its templates are read then), so `infer check` loads none of them.
import type { KernelKind } from '../program/kernels.ts';
import type { Program } from '../program/program.ts';
import type { Backend } from './backend.ts';

export interface BackendEntry {
  readonly name: Backend['name'];
  /** Source file extension of the rendered kernels. */
  readonly ext: string;
  /** The kernel kinds this backend renders. */
  readonly kinds: ReadonlySet<KernelKind>;
  load(): Promise<Backend>;
}

const ALL_KINDS: readonly KernelKind[] = ['embed', 'rmsnorm', 'matmul', 'rope', 'kv_append', 'attention', 'attention_merge', 'elementwise',
  'moe_route', 'moe_experts', 'moe_combine', 'softmax', 'attn_scores', 'attn_values', 'slice'];

export const BACKENDS: readonly BackendEntry[] = [
  { name: 'wgsl', ext: 'wgsl', kinds: new Set(ALL_KINDS), load: async () => (await import('./wgsl/render.ts')).wgslBackend },
  { name: 'cuda', ext: 'cu', kinds: new Set(ALL_KINDS), load: async () => (await import('./cuda/render.ts')).cudaBackend },
];

export class UnknownBackend extends Error {}

export function backendEntry(name: string): BackendEntry {
  const e = BACKENDS.find((b) => b.name === name);
  if (!e) throw new UnknownBackend(`unknown backend '${name}': use ${BACKENDS.map((b) => b.name).join(' or ')}`);
  return e;
}

/** The kernel kinds of `program` that `entry` does not render (empty: it renders them all). */
export function missingKinds(entry: BackendEntry, program: Program): KernelKind[] {
  return [...new Set(program.kernels.map((k) => k.spec.kind))].filter((kind) => !entry.kinds.has(kind));
}
