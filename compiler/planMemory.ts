// Activation memory planning: the last step of building a Program. Every computing IR
// node gets an activation buffer of maxTokensPerForward rows, but a forward needs only
// a few of them at any one step: the residual stream, the current layer's q/k/v, its
// FFN hidden. Without planning, activation memory grows with the layer count; with it,
// buffers whose live ranges over the dispatch list do not overlap share one "arena",
// and activation memory is what the busiest step needs (independent of depth).
//
// Liveness: a buffer is live from the first step that touches it (its writer) to the
// last step that reads it, both ends included, so a step's inputs and its output never
// share storage (no kernel is asked to work in place, and no dispatch binds one buffer
// twice, which WebGPU refuses for a writable binding). Buffers the runtime reads after
// the forward stay live to its end: the MoE routing (runtime/runner/moeRouting.ts reads
// every moe_route output back for statistics). The logits are never planned.
//
// Allocation is greedy by size (as TFLite's shared-object planner): buffers in order of
// decreasing per-token size, each into the smallest arena whose members' ranges it does
// not overlap, else a new arena of its size. Sorting by size first means an arena never
// grows: its first member is its largest. Over 1000 random llama shapes and fusion sets
// this plans 2 and 8 layers alike and stays within about 5% of the peak live bytes (a
// lower bound for any plan); a linear scan in step order did worse on both.
import { bindingNames, type KernelSpec } from '../program/kernels.ts';
import type { BufferDecl, Program, Step } from '../program/program.ts';

/** Inclusive step indices; `last === steps.length` means "read after the forward". */
export interface LiveRange { readonly first: number; readonly last: number }

export interface MemoryPlanInput {
  readonly buffers: readonly BufferDecl[];
  readonly kernels: readonly { readonly key: string; readonly spec: KernelSpec }[];
  readonly steps: readonly Step[];
  readonly logits: string;
}

export interface MemoryPlan {
  /** The input buffers, each planned activation with `storage` naming its arena. */
  readonly buffers: BufferDecl[];
  readonly arenas: BufferDecl[];
}

/** Buffers the runtime reads once the forward is done (besides the logits): every moe_route output. */
export function readAfterForward(p: Omit<MemoryPlanInput, 'buffers' | 'logits'>): Set<string> {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  return new Set(p.steps.filter((s) => specs.get(s.kernel)?.kind === 'moe_route').map((s) => s.args.out));
}

/** Every buffer a step binds, with its first and last step; buffers read after the forward end at steps.length. */
export function liveRanges(p: Omit<MemoryPlanInput, 'buffers' | 'logits'>): Map<string, LiveRange> {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  const ranges = new Map<string, LiveRange>();
  p.steps.forEach((s, i) => {
    const spec = specs.get(s.kernel);
    // A step's bindings come from its kernel's binding list; args the kernel does not
    // bind are not accesses (none exist today, but the binder ignores them too).
    const names = spec ? bindingNames(spec) : Object.keys(s.args);
    for (const b of names) {
      const name = s.args[b];
      if (name === undefined) continue;
      const r = ranges.get(name);
      ranges.set(name, r ? { first: Math.min(r.first, i), last: Math.max(r.last, i) } : { first: i, last: i });
    }
  });
  for (const name of readAfterForward(p)) {
    const r = ranges.get(name);
    if (r) ranges.set(name, { first: r.first, last: p.steps.length });
  }
  return ranges;
}

const overlaps = (a: LiveRange, b: LiveRange): boolean => a.first <= b.last && b.first <= a.last;

/** Whether a buffer may live in an arena: a per-token f32 activation the steps use, not the logits. */
function plannable(d: BufferDecl, logits: string, ranges: ReadonlyMap<string, LiveRange>): boolean {
  return d.kind === 'activation' && d.dtype === 'f32' && d.name !== logits && d.elements === 0
    && !d.perPage && !d.perSeq && d.perToken > 0 && ranges.has(d.name);
}

/** Steps between a range and the nearest of an arena's members (none overlaps it). */
const gap = (members: readonly LiveRange[], r: LiveRange): number =>
  Math.min(...members.map((m) => (m.last < r.first ? r.first - m.last : m.first - r.last)));

/** Assigns the plannable activations to arenas (see the file comment). */
export function planMemory(p: MemoryPlanInput): MemoryPlan {
  const ranges = liveRanges(p);
  const span = (r: LiveRange) => r.last - r.first;
  // Largest first; among equal sizes the longest-lived first (the residual stream), whose
  // ranges are hardest to fit around, then by start and name for a deterministic plan.
  const order = p.buffers.filter((d) => plannable(d, p.logits, ranges))
    .map((d) => ({ d, r: ranges.get(d.name)! }))
    .sort((a, b) => b.d.perToken - a.d.perToken || span(b.r) - span(a.r) || a.r.first - b.r.first
      || (a.d.name < b.d.name ? -1 : a.d.name > b.d.name ? 1 : 0));
  const arenas: { name: string; perToken: number; members: LiveRange[] }[] = [];
  const storage = new Map<string, string>();
  for (const { d, r } of order) {
    // Every existing arena is at least this large (sorted by size). The smallest free one
    // keeps large arenas for large buffers; among equals, the one whose members come
    // closest in time, so gaps are filled tightly and longer gaps stay whole for later
    // buffers (this keeps the plan of a repeated layer the same at any depth).
    let best: (typeof arenas)[number] | undefined;
    for (const a of arenas) {
      if (a.members.some((m) => overlaps(m, r))) continue;
      if (!best || a.perToken < best.perToken || (a.perToken === best.perToken && gap(a.members, r) < gap(best.members, r))) best = a;
    }
    if (!best) { best = { name: `arena${arenas.length}`, perToken: d.perToken, members: [] }; arenas.push(best); }
    best.members.push(r);
    storage.set(d.name, best.name);
  }
  return {
    buffers: p.buffers.map((d) => (storage.has(d.name) ? { ...d, storage: storage.get(d.name)! } : d)),
    arenas: arenas.map((a) => ({ name: a.name, kind: 'activation', dtype: 'f32', perToken: a.perToken, elements: 0 })),
  };
}

/** Per-token activation values: every arena plus every activation with storage of its own. */
export function activationPerToken(p: { readonly buffers: readonly BufferDecl[]; readonly arenas: readonly BufferDecl[] }): number {
  const own = p.buffers.filter((d) => d.kind === 'activation' && d.storage === undefined);
  return [...p.arenas, ...own].reduce((n, d) => n + d.perToken, 0);
}

const MiB = 1024 * 1024;

/**
 * One line for `infer compile`: activation bytes at the model's context as tokens per
 * forward (the runtime's default where the binding limit allows), against one buffer each.
 */
export function memorySummary(p: Program): string {
  const tokens = p.model.maxContext;
  const acts = p.buffers.filter((d) => d.kind === 'activation');
  const planned = activationPerToken(p) * 4, unplanned = acts.reduce((n, d) => n + d.perToken, 0) * 4;
  const shared = acts.filter((d) => d.storage !== undefined).length;
  return `activations: ${acts.length} buffers (${shared} in ${p.arenas.length} shared arenas), ${planned} bytes per token, `
    + `${(planned * tokens / MiB).toFixed(1)} MiB at ${tokens} tokens per forward (${(unplanned * tokens / MiB).toFixed(1)} MiB unshared)`;
}

/** For `--print-ir`: the summary and each arena's members, as comment lines. */
export function printMemoryPlan(p: Program): string {
  const lines = [`# ${memorySummary(p)}`];
  for (const a of p.arenas) {
    const members = p.buffers.filter((d) => d.storage === a.name).map((d) => d.name);
    lines.push(`# ${a.name} [T, ${a.perToken}]: ${members.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}
