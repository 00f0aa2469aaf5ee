// Which proposer `infer run` uses, from the spec's `speculative` section and
// the command-line flags (flags win), with the draft compiled and checked:
// a draft model (in the same file or another spec) must have the target's
// vocabulary; a layer-skipping self-draft is the target's spec lowered with
// fewer layers, sharing its weights by name (blk.0..N-1, output_norm, output).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { diagnosticAt, formatDiagnostic, formatDiagnostics, parseInfer, resolveSpeculative, type Diagnostic, type Loc, type Model } from '../dsl/index.ts';
import { evaluateConfig } from '../dsl/config.ts';
import { compileModel, compileSpec, type Compiled } from './compile.ts';
import type { Graph } from './ir/graph.ts';
import type { Program } from '../program/program.ts';

export type Ready = Compiled & { program: Program; graph: Graph; ast: Model };

export type ProposerPlan =
  | { kind: 'draft'; draft: Ready; file: string; weights: string | null }
  | { kind: 'self-draft'; draft: Ready; layers: number }
  | { kind: 'ngram'; n: number };

export interface SpecPlan { readonly proposer: ProposerPlan; readonly lookahead: number; readonly adaptive: boolean }

export interface SpecFlagValues {
  readonly draft?: string; readonly draftWeights?: string; readonly lookahead?: number; readonly ngram?: number;
  readonly selfDraftLayers?: number; readonly adaptive?: boolean;
}

/** A problem with the speculative setup; `message` is ready to print (file:line:col and caret lines included). */
export class SpecPlanError extends Error {}

const DEFAULT_LOOKAHEAD = 4;

function fail(ds: Diagnostic[], text: string): never {
  throw new SpecPlanError(formatDiagnostics(ds, text));
}

function readText(path: string, what: string): string {
  try { return readFileSync(path, 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SpecPlanError(`cannot read ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

function ready(c: Compiled, text: string): Ready {
  if (c.diagnostics.length || !c.program || !c.graph || !c.ast) fail(c.diagnostics, text);
  return c as Ready;
}

/** The error for a vocabulary mismatch, at `at` in the target's spec when the spec named the draft. */
function checkVocab(target: Ready, targetFile: string, draft: Ready, draftFile: string, at: { loc: Loc; text: string } | null): void {
  const tv = target.program.model.vocab, dv = draft.program.model.vocab;
  if (tv === dv) return;
  const msg = `draft '${draft.program.model.name}' (${draftFile}) has a vocabulary of ${dv} tokens, but target '${target.program.model.name}' (${targetFile}) has ${tv}: a draft must share its target's vocabulary`;
  if (at) throw new SpecPlanError(formatDiagnostic(diagnosticAt(targetFile, at.loc, msg), at.text));
  throw new SpecPlanError(msg);
}

/**
 * The speculative plan for a compiled target, or null when neither the spec
 * nor the flags ask for speculation. Throws SpecPlanError on any problem.
 */
export function planSpeculative(target: Ready, targetFile: string, targetText: string, f: SpecFlagValues, noFuse?: ReadonlySet<string>): SpecPlan | null {
  const ast = target.ast;
  const cfg = evaluateConfig(ast).values;
  // Models after the first in the file: candidates for `draft = Name`.
  const others = parseInfer(targetText, targetFile).others ?? [];
  const r = resolveSpeculative(ast, others, cfg);
  if (r.diagnostics.length) fail(r.diagnostics, targetText);
  const s = r.settings;
  const flagProposers = [f.draft !== undefined && '--draft', f.ngram !== undefined && '--ngram', f.selfDraftLayers !== undefined && '--self-draft-layers'].filter(Boolean);
  if (flagProposers.length > 1) throw new SpecPlanError(`${flagProposers.join(' and ')} each choose a proposer; give one`);
  if (f.draftWeights !== undefined && f.draft === undefined && s?.draft == null) throw new SpecPlanError('--draft-weights needs a draft model (--draft SPEC or draft = ... in the spec)');
  if (!flagProposers.length && !s) {
    if (f.lookahead !== undefined || f.adaptive) throw new SpecPlanError('--lookahead and --adaptive need a proposer: --draft SPEC, --self-draft-layers N or --ngram N');
    return null;
  }
  const lookahead = f.lookahead ?? s?.lookahead ?? DEFAULT_LOOKAHEAD;
  const adaptive = f.adaptive ?? s?.adaptive ?? false;
  const selfDraft = (layers: number): ProposerPlan => {
    const declared = target.program.model.layers;
    if (layers > declared) throw new SpecPlanError(`--self-draft-layers ${layers} exceeds the ${declared} layers of ${target.program.model.name}`);
    return { kind: 'self-draft', layers, draft: ready(compileModel(ast, { noFuse, layers }), targetText) };
  };
  let proposer: ProposerPlan;
  if (f.draft !== undefined) {
    const text = readText(f.draft, 'draft spec');
    const draft = ready(compileSpec(text, f.draft, { noFuse }), text);
    checkVocab(target, targetFile, draft, f.draft, null);
    proposer = { kind: 'draft', draft, file: f.draft, weights: f.draftWeights ?? null };
  } else if (f.ngram !== undefined) proposer = { kind: 'ngram', n: f.ngram };
  else if (f.selfDraftLayers !== undefined) proposer = selfDraft(f.selfDraftLayers);
  else if (s!.draft) {
    const ref = s!.draft;
    let draft: Ready, file: string;
    if (ref.kind === 'model') { file = targetFile; draft = ready(compileModel(ref.model, { noFuse }), targetText); }
    else {
      file = resolve(dirname(targetFile), ref.path);
      const text = readText(file, 'draft spec');
      draft = ready(compileSpec(text, file, { noFuse }), text);
    }
    checkVocab(target, targetFile, draft, file, { loc: ref.loc, text: targetText });
    const w = f.draftWeights ?? (s!.draftWeights ? resolve(dirname(targetFile), s!.draftWeights.path) : null);
    proposer = { kind: 'draft', draft, file, weights: w };
  } else if (s!.ngram !== null) proposer = { kind: 'ngram', n: s!.ngram };
  else proposer = selfDraft(s!.selfDraftLayers!);
  return { proposer, lookahead, adaptive };
}
