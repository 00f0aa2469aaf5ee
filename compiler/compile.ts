// The whole front half as one pure function: spec text -> AST -> IR -> fused IR
// -> Program. The CLI, the tests and the benchmarks all compile through here.
import { parseInfer, type Diagnostic, type Model } from '../dsl/index.ts';
import type { Graph } from './ir/graph.ts';
import { lower } from './lower.ts';
import { runPipeline } from './pipeline.ts';
import type { BufferLimits, Program } from '../program/program.ts';
import { schedule } from './schedule.ts';

export interface CompileOptions {
  /** Fusion keys to switch off (see pipeline.ts FUSION_KEYS). */
  readonly noFuse?: ReadonlySet<string>;
  /** The weight file's tensor type per param name: f16 / bf16 and block matrices stay compact (schedule.ts). */
  readonly weightTypes?: ReadonlyMap<string, string>;
  /** Keep only the first N layers (a layer-skipping self-draft; see lower.ts). */
  readonly layers?: number;
  /** Share activation storage by liveness (default true; schedule.ts ScheduleOptions.planMemory). */
  readonly planMemory?: boolean;
  /** Device buffer limits to split params for (default WebGPU's; schedule.ts ScheduleOptions.limits). */
  readonly limits?: BufferLimits;
}

export interface Compiled {
  readonly ast: Model | null;
  /** The lowered, unfused graph. */
  readonly unfused: Graph | null;
  /** The graph after the pass pipeline. */
  readonly graph: Graph | null;
  readonly program: Program | null;
  readonly diagnostics: Diagnostic[];
}

export function compileSpec(text: string, file: string, options: CompileOptions = {}): Compiled {
  const parsed = parseInfer(text, file);
  if (!parsed.ast || parsed.diagnostics.length) return { ast: parsed.ast, unfused: null, graph: null, program: null, diagnostics: parsed.diagnostics };
  return compileModel(parsed.ast, options);
}

/** The back half for one parsed model (a file may hold several: a target and its drafts). */
export function compileModel(ast: Model, options: CompileOptions = {}): Compiled {
  const lowered = lower(ast, { layers: options.layers });
  if (!lowered.graph || lowered.diagnostics.length) return { ast, unfused: null, graph: null, program: null, diagnostics: lowered.diagnostics };
  const { graph, applied } = runPipeline(lowered.graph, options.noFuse);
  return { ast, unfused: lowered.graph, graph, program: schedule(graph, applied, { weightTypes: options.weightTypes, planMemory: options.planMemory, limits: options.limits }), diagnostics: [] };
}
