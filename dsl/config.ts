// Compile-time values: config constants and kv_cache settings. Both are
// plain arithmetic over numbers and earlier constants, evaluated here so the
// lowering receives numbers, and every mistake points at its own token.
import type { BinaryExpr, Expr, KvCacheSpec, KvDtype, Model } from './ast.ts';
import { DEFAULT_KV_CACHE, KV_DTYPES } from './ast.ts';
import { type Diagnostic, diagnosticAt } from './diagnostics.ts';
import { type Loc, where } from './loc.ts';

export type ConstResult =
  | { ok: true; value: number }
  /** `unknown` names the undefined identifier when that is the problem. */
  | { ok: false; message: string; loc: Loc; unknown?: string };

/**
 * Evaluates a numeric constant expression. `lookup` returns a name's value,
 * `undefined` for an unknown name, or `null` for a name whose own definition
 * failed (so the caller has already reported it and we stay quiet).
 */
export function evalConstExpr(e: Expr, lookup: (name: string) => number | null | undefined, context = 'config'): ConstResult | null {
  switch (e.kind) {
    case 'num':
      return { ok: true, value: e.value };
    case 'ident': {
      const v = lookup(e.name);
      if (v === null) return null;
      if (v === undefined) return { ok: false, message: `unknown name '${e.name}' in ${context} expression`, loc: e.loc, unknown: e.name };
      return { ok: true, value: v };
    }
    case 'neg': {
      const a = evalConstExpr(e.arg, lookup, context);
      return a && a.ok ? { ok: true, value: -a.value } : a;
    }
    case 'binary': {
      // A long sum parses left-deep: fold its left spine with a loop so its
      // length cannot exhaust the stack (right operands are shallow).
      const spine: BinaryExpr[] = [];
      let leftmost: Expr = e;
      for (; leftmost.kind === 'binary'; leftmost = leftmost.left) spine.push(leftmost);
      let l = evalConstExpr(leftmost, lookup, context);
      for (let i = spine.length - 1; i >= 0 && l && l.ok; i--) l = evalBinary(spine[i], l.value, lookup, context);
      return l;
    }
    case 'call':
      return { ok: false, message: `function call '${e.callee}(...)' is not allowed in ${context} expressions`, loc: e.calleeLoc };
    case 'member':
      return { ok: false, message: `member access '.${e.name}' is not allowed in ${context} expressions`, loc: e.loc };
    case 'list':
      return { ok: false, message: `a list is not allowed in ${context} expressions`, loc: e.loc };
  }
}

function evalBinary(e: BinaryExpr, left: number, lookup: (name: string) => number | null | undefined, context: string): ConstResult | null {
  if (e.op === '@') return { ok: false, message: `'@' (matrix product) is not allowed in ${context} expressions`, loc: e.opLoc };
  const r = evalConstExpr(e.right, lookup, context);
  if (!r || !r.ok) return r;
  if ((e.op === '/' || e.op === '%') && r.value === 0) return { ok: false, message: 'division by zero', loc: e.opLoc };
  const value =
    e.op === '+' ? left + r.value
    : e.op === '-' ? left - r.value
    : e.op === '*' ? left * r.value
    : e.op === '/' ? left / r.value
    : left % r.value;
  if (!Number.isFinite(value)) return { ok: false, message: 'result is too large', loc: e.opLoc };
  return { ok: true, value };
}

export interface ConfigValues {
  values: Map<string, number>;
  diagnostics: Diagnostic[];
}

/**
 * Evaluates config constants in order; each may use the ones before it.
 * A constant that fails is left out of `values`, and uses of it are not
 * reported again.
 */
export function evaluateConfig(ast: Model): ConfigValues {
  const values = new Map<string, number>();
  const diagnostics: Diagnostic[] = [];
  const firstAt = new Map<string, Loc>();
  const failed = new Set<string>();
  const all = new Map(ast.config.map((c) => [c.name, c.nameLoc] as const));
  for (const c of ast.config) {
    const first = firstAt.get(c.name);
    if (first) {
      diagnostics.push(diagnosticAt(ast.file, c.nameLoc, `duplicate config constant '${c.name}' (first defined at ${where(first)})`));
      continue;
    }
    firstAt.set(c.name, c.nameLoc);
    const r = evalConstExpr(c.value, (n) => (failed.has(n) ? null : values.get(n)));
    if (r && r.ok) {
      values.set(c.name, r.value);
      continue;
    }
    failed.add(c.name);
    if (!r) continue;
    // An unknown name that is defined further down is an ordering mistake.
    const later = r.unknown ? laterDefinition(r.unknown, all, c.nameLoc) : null;
    diagnostics.push(diagnosticAt(ast.file, r.loc, later ?? r.message));
  }
  return { values, diagnostics };
}

function laterDefinition(name: string, all: Map<string, Loc>, current: Loc): string | null {
  const def = all.get(name);
  if (!def || def.offset < current.offset) return null;
  return def.offset === current.offset
    ? `config constant '${name}' refers to itself`
    : `'${name}' is used before it is defined (at ${where(def)}); config constants may only use earlier ones`;
}

export interface KvCacheResult {
  kv: KvCacheSpec;
  diagnostics: Diagnostic[];
}

/**
 * Checks the kv_cache section and fills in defaults (contiguous, f32, no
 * window). Values may use config constants. Keys: layout, dtype, window.
 */
export function resolveKvCache(ast: Model, config: Map<string, number>): KvCacheResult {
  const kv: KvCacheSpec = { ...DEFAULT_KV_CACHE };
  const diagnostics: Diagnostic[] = [];
  const err = (loc: Loc, message: string) => diagnostics.push(diagnosticAt(ast.file, loc, message));
  const num = (e: Expr): number | null => {
    const r = evalConstExpr(e, (n) => config.get(n) ?? (ast.config.some((c) => c.name === n) ? null : undefined), 'kv_cache');
    if (r && !r.ok) err(r.loc, r.message);
    return r && r.ok ? r.value : null;
  };
  const seen = new Map<string, Loc>();
  for (const entry of ast.kvCache ?? []) {
    const first = seen.get(entry.key);
    if (first) {
      err(entry.keyLoc, `duplicate kv_cache key '${entry.key}' (first at ${where(first)})`);
      continue;
    }
    seen.set(entry.key, entry.keyLoc);
    const v = entry.value;
    if (entry.key === 'layout') {
      if (v.kind === 'ident' && v.name === 'contiguous') kv.layout = 'contiguous';
      else if ((v.kind === 'ident' || v.kind === 'call') && (v.kind === 'ident' ? v.name : v.callee) === 'paged') {
        kv.layout = 'paged';
        kv.page = pagedSize(v, num, err);
      } else err(v.loc, "kv_cache layout must be 'contiguous' or 'paged(page = N)'");
    } else if (entry.key === 'dtype') {
      if (v.kind === 'ident' && (KV_DTYPES as readonly string[]).includes(v.name)) kv.dtype = v.name as KvDtype;
      else err(v.loc, `kv_cache dtype must be one of ${KV_DTYPES.join(', ')}${v.kind === 'ident' ? ` (got '${v.name}')` : ''}`);
    } else if (entry.key === 'window') {
      const w = num(v);
      if (w !== null && !(Number.isInteger(w) && w > 0)) err(v.loc, `kv_cache window must be a positive integer, got ${w}`);
      else if (w !== null) kv.window = w;
    } else {
      err(entry.keyLoc, `unknown kv_cache key '${entry.key}' (expected layout, dtype or window)`);
    }
  }
  return { kv, diagnostics };
}

function pagedSize(v: Expr, num: (e: Expr) => number | null, err: (loc: Loc, m: string) => void): number | null {
  if (v.kind !== 'call') {
    err(v.loc, 'paged layout needs a page size: paged(page = 16)');
    return null;
  }
  for (const a of v.args) err(a.loc, 'paged takes a named argument: paged(page = 16)');
  let page: number | null = null;
  let found = false;
  for (const a of v.named) {
    if (a.name !== 'page') {
      err(a.loc, `unknown argument '${a.name}' to paged (expected page)`);
      continue;
    }
    found = true;
    const p = num(a.value);
    if (p === null) continue;
    // Page sizes index with shifts and masks in the kernels.
    if (!Number.isInteger(p) || p < 1 || !Number.isInteger(Math.log2(p))) err(a.value.loc, `page must be a power of two, got ${p}`);
    else page = p;
  }
  if (!found && v.args.length === 0) err(v.loc, 'paged layout needs a page size: paged(page = 16)');
  return page;
}
