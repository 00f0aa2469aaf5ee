// `infer run` with speculative decoding: the flags (--draft SPEC [--draft-weights
// FILE] | --self-draft-layers N | --ngram N, --lookahead K, --adaptive,
// --no-speculative), the engines for the target and its draft (one WebGPU
// device for both), the run, and its report: `stats.spec` in --json output, a
// table on stderr otherwise.
import { readFileSync } from 'node:fs';
import type { Model } from '../dsl/index.ts';
import type { SamplingOptions } from '../runtime/sampling.ts';
import { speculativeGenerate } from '../runtime/speculative/decode.ts';
import { DraftProposer } from '../runtime/speculative/draft.ts';
import { NgramProposer } from '../runtime/speculative/ngram.ts';
import type { Proposer } from '../runtime/speculative/proposer.ts';
import { PagedSeqModel } from '../runtime/speculative/pagedSeqModel.ts';
import type { PoolOptions } from '../runtime/pagedEngine.ts';
import { specTable } from '../runtime/speculative/stats.ts';
import type { Io } from './main.ts';
import { openEngines, type EngineBackendName } from './openEngine.ts';
import { loadWeights, RunError, type RunFlags } from './run.ts';
import { parseInteger } from './args.ts';
import { printReport, type SeqOutcome } from './outcome.ts';
import type { WeightSource } from '../program/weights.ts';
import type { Graph } from '../compiler/ir/graph.ts';
import { parseNoFuse } from '../compiler/pipeline.ts';
import type { Program } from '../program/program.ts';
import { planSpeculative, SpecPlanError, type Ready, type SpecPlan } from '../compiler/specDraft.ts';

export interface SpecFlags {
  draft?: string; 'draft-weights'?: string; lookahead?: string; ngram?: string; 'self-draft-layers'?: string;
  adaptive?: boolean; 'no-speculative'?: boolean;
}

export const SPEC_OPTIONS = {
  draft: { type: 'string' }, 'draft-weights': { type: 'string' }, lookahead: { type: 'string' }, ngram: { type: 'string' },
  'self-draft-layers': { type: 'string' }, adaptive: { type: 'boolean' }, 'no-speculative': { type: 'boolean' },
} as const;

export const SPEC_USAGE = `                 [--draft SPEC [--draft-weights FILE] | --self-draft-layers N | --ngram N]
                 [--lookahead K] [--adaptive] [--no-speculative]`;

function int(flag: string, text: string | undefined, min: number): number | undefined {
  return text === undefined ? undefined : parseInteger(flag, text, 0, min);
}

/** The speculative plan for this run, or null for plain decoding. */
export function specPlanFor(c: { program: Program; graph: Graph; ast?: Model | null }, f: RunFlags): SpecPlan | null {
  const asked = ['draft', 'draft-weights', 'lookahead', 'ngram', 'self-draft-layers', 'adaptive'].filter((k) => f[k as keyof SpecFlags] !== undefined);
  if (f['no-speculative']) {
    if (asked.length) throw new RunError(`--no-speculative contradicts --${asked[0]}`);
    return null;
  }
  if (!c.ast) return null;
  const file = c.ast.file;
  const flags = {
    draft: f.draft, draftWeights: f['draft-weights'], lookahead: int('lookahead', f.lookahead, 1), ngram: int('ngram', f.ngram, 1),
    selfDraftLayers: int('self-draft-layers', f['self-draft-layers'], 1), adaptive: f.adaptive,
  };
  if (!c.ast.speculative && !asked.length) return null;
  try {
    return planSpeculative(c as Ready, file, readFileSync(file, 'utf8'), flags, parseNoFuse(f['no-fuse']));
  } catch (e) {
    if (e instanceof SpecPlanError) throw new RunError(e.message);
    throw e;
  }
}

type Built = { readonly program: Program; readonly graph: Graph };

export interface SpecRun {
  target: Built; plan: SpecPlan; flags: RunFlags; io: Io; backend: EngineBackendName; sampling: SamplingOptions;
  prompts: number[][]; pool: PoolOptions; maxTokens: number; weights: WeightSource; topLogprobs: number;
  /** Ctrl-C: stop generating and report what there is. */
  signal?: AbortSignal;
  /** Text prompts: sequences are reported as text too (cli/text.ts). */
  text?: (ids: readonly number[]) => string;
  /** The tokenizer's end-of-generation ids (text prompts). */
  stopIds?: ReadonlySet<number>;
}

export async function runSpeculative(r: SpecRun): Promise<number> {
  const { target, plan, flags: f, io } = r;
  const m = target.program.model;
  const say = (t: string) => { if (!f.json) io.err(t); };
  const p = plan.proposer;
  let draft: Built | null = null, dw: WeightSource | null = null;
  if (p.kind === 'self-draft') { draft = p.draft; dw = r.weights; }
  else if (p.kind === 'draft') { draft = p.draft; dw = await loadWeights(p.draft.program, p.weights ?? undefined, '--draft-weights', io, f.json ?? false); }
  const label = p.kind === 'ngram' ? `prompt lookup (n = ${p.n})`
    : p.kind === 'self-draft' ? `self-draft (${p.layers} of ${m.layers} layers)`
    : `draft ${p.draft.program.model.name} (${p.draft.program.model.layers} layer${p.draft.program.model.layers === 1 ? "" : "s"}, ${p.file})`;
  say(`${m.name}: ${target.program.steps.length} dispatches per token; backend ${r.backend}; speculative: ${label}, lookahead ${plan.lookahead}${plan.adaptive ? ' (adaptive)' : ''}\n`);
  const opened = await openEngines(r.backend, [{ ...target, weights: r.weights }, ...(draft ? [{ ...draft, weights: dw! }] : [])], r.pool);
  const engines = { target: opened.engines[0], draft: opened.engines[1] ?? null };
  try {
    if (opened.device && f.verbose) say(`device: ${opened.device}\n`);
    // Every sequence of the batch lives in the engines' page pools: one target pass per step for the whole batch.
    const targetModel = new PagedSeqModel(engines.target);
    const proposer: Proposer = engines.draft
      ? new DraftProposer(new PagedSeqModel(engines.draft), p.kind === 'self-draft' ? 'self-draft' : 'draft', label)
      : new NgramProposer((p as { n: number }).n);
    const res = await speculativeGenerate(targetModel, proposer, r.prompts, {
      maxTokens: r.maxTokens, lookahead: plan.lookahead, adaptive: plan.adaptive, sampling: r.sampling, eos: m.eos, ...(r.stopIds ? { stopIds: r.stopIds } : {}), ignoreEos: f['ignore-eos'] ?? false,
      topLogprobs: r.topLogprobs, signal: r.signal,
    });
    const { spec, ...rest } = res.stats;
    const setup_ms = engines.target.stats().setupMs + (engines.draft?.stats().setupMs ?? 0);
    const seqs: SeqOutcome[] = res.sequences.map((q) => ({ tokens: q.tokens, topLogprobs: q.topLogprobs, stop: q.stop, ...(q.notice ? { message: q.notice } : {}) }));
    const single = seqs.length === 1;
    const stats = { backend: engines.target.stats().backend, ...(single ? {} : { sequences: seqs.length }), ...rest, setup_ms, spec };
    return printReport({ sequences: seqs, stats, tables: specTable(spec), single }, { json: f.json, verbose: f.verbose, topLogprobs: r.topLogprobs, ...(r.text ? { text: r.text } : {}) }, io);
  } finally {
    opened.close();
  }
}
