// The `speculative { ... }` section of a model: how `infer run` decodes it by
// default. Exactly one proposer:
//   draft = "small.infer"        another spec file (relative to this one), or
//   draft = SmallModel           another model in this file;
//   self_draft_layers = 2        the model itself cut to its first N layers;
//   ngram = 3                    prompt lookup, no model.
// and the knobs: lookahead = K (default 4), adaptive = true|false,
// draft_weights = "small.gguf" (for a draft bound to `weights gguf`).
// Numbers may use config constants. Whether a draft shares the target's
// vocabulary needs the draft compiled: compiler/specDraft.ts checks that.
import type { Expr, Model, SpecEntry } from './ast.ts';
import { evalConstExpr } from './config.ts';
import { type Diagnostic, diagnosticAt } from './diagnostics.ts';
import { type Loc, where } from './loc.ts';

export type DraftRef = { kind: 'file'; path: string; loc: Loc } | { kind: 'model'; model: Model; loc: Loc };

export interface SpecSettings {
  readonly draft: DraftRef | null;
  readonly draftWeights: { path: string; loc: Loc } | null;
  readonly selfDraftLayers: number | null;
  readonly ngram: number | null;
  readonly lookahead: number | null;
  readonly adaptive: boolean | null;
  readonly loc: Loc;
}

const KEYS = ['draft', 'draft_weights', 'self_draft_layers', 'ngram', 'lookahead', 'adaptive'];
const PROPOSERS = ['draft', 'self_draft_layers', 'ngram'];

/** Validates a model's speculative section; null settings when it has none or it is wrong. */
export function resolveSpeculative(ast: Model, others: readonly Model[], config: ReadonlyMap<string, number>): { settings: SpecSettings | null; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  if (!ast.speculative) return { settings: null, diagnostics };
  const err = (loc: Loc, m: string) => diagnostics.push(diagnosticAt(ast.file, loc, m));
  const s = {
    draft: null as DraftRef | null, draftWeights: null as SpecSettings['draftWeights'], selfDraftLayers: null as number | null,
    ngram: null as number | null, lookahead: null as number | null, adaptive: null as boolean | null, loc: ast.speculative.loc,
  };
  const seen = new Map<string, Loc>();
  let proposer: SpecEntry | null = null;
  const positive = (e: SpecEntry, what: string): number | null => {
    if (e.value.kind === 'string') { err(e.value.loc, `${what} takes a number, not a quoted string`); return null; }
    const r = evalConstExpr(e.value, (n) => config.get(n), 'speculative');
    if (!r) return null;
    if (!r.ok) { err(r.loc, r.message); return null; }
    if (!Number.isInteger(r.value) || r.value < 1) { err(e.value.loc, `${what} must be an integer >= 1, got ${r.value}`); return null; }
    return r.value;
  };
  for (const e of ast.speculative.entries) {
    const first = seen.get(e.key);
    if (first) { err(e.keyLoc, `duplicate speculative key '${e.key}' (first at ${where(first)})`); continue; }
    seen.set(e.key, e.keyLoc);
    if (!KEYS.includes(e.key)) { err(e.keyLoc, `unknown speculative key '${e.key}' (expected ${KEYS.join(', ')})`); continue; }
    if (PROPOSERS.includes(e.key)) {
      if (proposer) { err(e.keyLoc, `'${e.key}' and '${proposer.key}' (at ${where(proposer.keyLoc)}) both choose a proposer; keep one`); continue; }
      proposer = e;
    }
    const v = e.value;
    switch (e.key) {
      case 'draft':
        if (v.kind === 'string') {
          if (!v.value.trim()) err(v.loc, 'the draft file name is empty');
          else s.draft = { kind: 'file', path: v.value, loc: v.loc };
        } else if (v.kind === 'ident') {
          const m = others.find((o) => o.name === v.name);
          if (v.name === ast.name) err(v.loc, `a model cannot be its own draft; for a layer-skipping self-draft write self_draft_layers = N`);
          else if (!m) err(v.loc, `no model '${v.name}' in this file${others.length ? ` (models here: ${others.map((o) => o.name).join(', ')})` : ''}; write draft = "file.infer" for a draft in another file`);
          else s.draft = { kind: 'model', model: m, loc: v.loc };
        } else err(v.loc, 'draft must be a quoted file name ("draft.infer") or the name of another model in this file');
        break;
      case 'draft_weights':
        if (v.kind === 'string' && v.value.trim()) s.draftWeights = { path: v.value, loc: v.loc };
        else err(v.loc, 'draft_weights must be a quoted file name, e.g. "draft.gguf"');
        break;
      case 'self_draft_layers': {
        const n = positive(e, 'self_draft_layers');
        const layers = config.get('layers');
        if (n !== null && layers !== undefined && n > layers) err(e.value.loc, `self_draft_layers (${n}) exceeds the model's ${layers} layers`);
        else s.selfDraftLayers = n;
        break;
      }
      case 'ngram': s.ngram = positive(e, 'ngram'); break;
      case 'lookahead': s.lookahead = positive(e, 'lookahead'); break;
      case 'adaptive': s.adaptive = bool(v, err); break;
    }
  }
  if (!proposer) err(ast.speculative.loc, "a speculative section needs a proposer: draft = ..., self_draft_layers = N or ngram = N");
  if (s.draftWeights && !s.draft) err(s.draftWeights.loc, "draft_weights needs a 'draft' model");
  return { settings: diagnostics.length ? null : s, diagnostics };
}

function bool(v: Expr | { kind: 'string'; loc: Loc }, err: (loc: Loc, m: string) => void): boolean | null {
  if (v.kind === 'ident' && (v.name === 'true' || v.name === 'false')) return v.name === 'true';
  err(v.loc, 'adaptive must be true or false');
  return null;
}
