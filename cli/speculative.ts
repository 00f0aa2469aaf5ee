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
import { loadWeights, logprobTable, RunError, type RunFlags } from './run.ts';
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
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isInteger(v) || v < min) throw new RunError(`--${flag} needs an integer >= ${min}, got '${text}'`);
  return v;
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
    if (opened.device) say(`device: ${opened.device}\n`);
    // Every sequence of the batch lives in the engines' page pools: one target pass per step for the whole batch.
    const targetModel = new PagedSeqModel(engines.target);
    const proposer: Proposer = engines.draft
      ? new DraftProposer(new PagedSeqModel(engines.draft), p.kind === 'self-draft' ? 'self-draft' : 'draft', label)
      : new NgramProposer((p as { n: number }).n);
    const res = await speculativeGenerate(targetModel, proposer, r.prompts, {
      maxTokens: r.maxTokens, lookahead: plan.lookahead, adaptive: plan.adaptive, sampling: r.sampling, eos: m.eos, ignoreEos: f['ignore-eos'] ?? false,
      topLogprobs: r.topLogprobs,
    });
    const { spec, ...rest } = res.stats;
    const setup_ms = engines.target.stats().setupMs + (engines.draft?.stats().setupMs ?? 0);
    for (const seq of res.sequences) if (seq.notice) io.err(`note: ${seq.notice}\n`);
    if (res.sequences.length === 1) {
      const seq = res.sequences[0];
      const stats = { backend: r.backend, ...rest, stop_reason: seq.stop, setup_ms };
      if (f.json) {
        io.out(JSON.stringify({ tokens: seq.tokens, top_logprobs: seq.topLogprobs, stats: { ...stats, spec }, ...(seq.notice ? { notice: seq.notice } : {}) }) + '\n');
      } else {
        io.out(seq.tokens.join(' ') + '\n');
        if (r.topLogprobs > 0) io.out(logprobTable(seq.tokens, seq.topLogprobs));
        io.err(table(stats) + specTable(spec));
      }
    } else {
      const stats = { backend: r.backend, sequences: res.sequences.length, ...rest, setup_ms };
      if (f.json) {
        io.out(JSON.stringify({ sequences: res.sequences.map((q) => ({ tokens: q.tokens, top_logprobs: q.topLogprobs, stop_reason: q.stop })), stats: { ...stats, spec } }) + '\n');
      } else {
        res.sequences.forEach((q, i) => {
          io.out(`[${i}] ${q.tokens.join(' ')}\n`);
          if (r.topLogprobs > 0) io.out(logprobTable(q.tokens, q.topLogprobs));
        });
        io.err(table(stats) + specTable(spec));
      }
    }
  } finally {
    opened.close();
  }
  return 0;
}

function table(s: Record<string, number | string>): string {
  const rows = Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
