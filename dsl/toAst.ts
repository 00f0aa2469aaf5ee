// CST -> AST. A chevrotain visitor turns the pure-syntax tree into the typed
// AST and checks the structure the grammar deliberately leaves open, each
// with a precise position: missing separators, sections repeated, `params`
// and `return` placement in a layer, duplicate declarations.
// Only called on a CST from a parse without syntax errors, so every child
// the grammar makes mandatory is present. Expressions: toAstExpr.ts.
import type { CstNode } from 'chevrotain';
import type * as A from './ast.ts';
import type { Diagnostic } from './diagnostics.ts';
import { cstLoc, type Loc, tokenLoc, where } from './loc.ts';
import { type Args, byOffset, type Ctx, ExprBuilder, node, nodes, tok } from './toAstExpr.ts';

export class AstBuilder extends ExprBuilder {
  constructor(fileName: string) {
    super(fileName);
    this.validateVisitor();
  }

  /** Items of a block must be separated by a newline or ';'. */
  private checkSeparated(items: CstNode[], seps: CstNode[]): void {
    const all = [...items.map((n) => ({ n, item: true })), ...seps.map((n) => ({ n, item: false }))];
    all.sort((a, b) => byOffset(a.n, b.n));
    for (let i = 1; i < all.length; i++) {
      if (all[i].item && all[i - 1].item) {
        const at = cstLoc(all[i].n.location);
        this.error({ ...at, endLine: at.line, endCol: at.col, length: 1 }, "expected a newline or ';' before this statement");
      }
    }
  }

  /** Models after the first (drafts for it), in file order; filled by file(). */
  readonly others: A.Model[] = [];

  file(ctx: Ctx): A.Model | null {
    const models = nodes(ctx, 'model').map((n) => this.run(n) as A.Model | null);
    const seen = new Map<string, Loc>();
    for (const m of models) {
      if (!m) continue;
      const first = seen.get(m.name);
      if (first) this.error(m.nameLoc, `duplicate model '${m.name}' (first at ${where(first)})`);
      seen.set(m.name, m.nameLoc);
    }
    this.others.push(...(models.slice(1).filter((m) => m !== null) as A.Model[]));
    return models[0];
  }

  model(ctx: Ctx, self: CstNode): A.Model | null {
    const nameTok = tok(ctx, 'Identifier');
    const items = nodes(ctx, 'modelItem');
    this.checkSeparated(items, nodes(ctx, 'sep'));
    const sections: A.SectionLocs = { config: null, kvCache: null, weights: null, params: null };
    const m = {
      config: [] as A.ConfigEntry[],
      kvCache: null as A.KvCacheEntry[] | null,
      weights: null as A.WeightsDecl | null,
      params: [] as A.ParamDecl[],
      layer: null as A.LayerDecl | null,
      statements: [] as A.Statement[],
    };
    const once = (key: keyof A.SectionLocs, label: string, n: CstNode): boolean => {
      const loc = cstLoc(n.location);
      const first = sections[key];
      if (first) {
        this.error({ ...loc, endLine: loc.line, endCol: loc.col + label.length - 1, length: label.length },
          `duplicate '${label}' section (first at ${where(first)})`);
        return false;
      }
      sections[key] = loc;
      return true;
    };
    let ok = true;
    let speculative: A.Model['speculative'];
    for (const item of items) {
      const c = item.children as Ctx;
      if (c.configSection) {
        const n = node(c, 'configSection');
        const entries = this.run(n) as A.Assign[];
        if (once('config', 'config', n)) m.config = entries.map((e) => ({ name: e.target, nameLoc: e.targetLoc, value: e.value, loc: e.loc }));
      } else if (c.kvCacheSection) {
        const n = node(c, 'kvCacheSection');
        const entries = this.run(n) as A.Assign[];
        if (once('kvCache', 'kv_cache', n)) m.kvCache = entries.map((e) => ({ key: e.target, keyLoc: e.targetLoc, value: e.value, loc: e.loc }));
      } else if (c.weightsDecl) {
        const n = node(c, 'weightsDecl');
        const w = this.run(n) as A.WeightsDecl;
        if (once('weights', 'weights', n)) m.weights = w;
      } else if (c.paramsSection) {
        const n = node(c, 'paramsSection');
        const ps = this.run(n) as A.ParamDecl[];
        if (once('params', 'params', n)) m.params = ps;
      } else if (c.speculativeSection) {
        const n = node(c, 'speculativeSection');
        const sec = { entries: this.run(n) as A.SpecEntry[], loc: cstLoc(n.location) };
        if (speculative) this.error({ ...sec.loc, endLine: sec.loc.line, endCol: sec.loc.col + 10, length: 11 }, `duplicate 'speculative' section (first at ${where(speculative.loc)})`);
        else speculative = sec;
      } else if (c.layerDecl) {
        const layer = this.run(node(c, 'layerDecl')) as A.LayerDecl | null;
        if (!layer) ok = false;
        else if (m.layer) this.error(layer.nameLoc, `only one 'layer' is allowed per model (first is '${m.layer.name}' at ${where(m.layer.loc)})`);
        else {
          m.layer = layer;
          m.statements.push(layer);
        }
      } else {
        m.statements.push(this.run(node(c, 'binding')) as A.Assign);
      }
    }
    const name = nameTok.image;
    const nameLoc = tokenLoc(nameTok);
    const logits = [...m.statements].reverse().find((s): s is A.Assign => s.kind === 'assign' && s.target === 'logits');
    if (!logits) this.error(nameLoc, `model '${name}' never assigns 'logits' (its output)`);
    if (!ok || !logits || this.diagnostics.length > 0) return null;
    return { kind: 'model', file: this.fileName, name, nameLoc, ...m, logits, sections, ...(speculative ? { speculative } : {}), loc: cstLoc(self.location) };
  }

  modelItem(): never {
    throw new Error('modelItem is unpacked by model()');
  }

  configSection(ctx: Ctx): A.Assign[] {
    return this.run(node(ctx, 'bindingBlock')) as A.Assign[];
  }

  kvCacheSection(ctx: Ctx): A.Assign[] {
    return this.run(node(ctx, 'bindingBlock')) as A.Assign[];
  }

  bindingBlock(ctx: Ctx): A.Assign[] {
    const items = nodes(ctx, 'binding');
    this.checkSeparated(items, nodes(ctx, 'sep'));
    return items.map((n) => this.run(n) as A.Assign);
  }

  weightsDecl(ctx: Ctx, self: CstNode): A.WeightsDecl {
    const b = tok(ctx, 'Identifier');
    const { args, named } = ctx.argList ? (this.run(node(ctx, 'argList')) as Args) : { args: [], named: [] };
    for (const a of args) this.error(a.loc, `weights arguments must be named, e.g. ${b.image}(seed = 7)`);
    return { binding: b.image, bindingLoc: tokenLoc(b), args: named, loc: cstLoc(self.location) };
  }

  paramsSection(ctx: Ctx): A.ParamDecl[] {
    const items = nodes(ctx, 'typedName');
    this.checkSeparated(items, nodes(ctx, 'sep'));
    const params = items.map((n) => this.run(n) as A.ParamDecl);
    this.checkUnique(params, 'parameter');
    return params;
  }

  private checkUnique(decls: A.ParamDecl[], what: string): void {
    const seen = new Map<string, Loc>();
    for (const d of decls) {
      const first = seen.get(d.name);
      if (first) this.error(d.nameLoc, `duplicate ${what} '${d.name}' (first declared at ${where(first)})`);
      else seen.set(d.name, d.nameLoc);
    }
  }

  layerDecl(ctx: Ctx, self: CstNode): A.LayerDecl | null {
    const nameTok = tok(ctx, 'Identifier');
    const name = nameTok.image;
    const inputs = nodes(ctx, 'typedName').map((n) => this.run(n) as A.ParamDecl);
    this.checkUnique(inputs, 'input');
    const outNode = node(ctx, 'list');
    const output = (this.run(outNode) as A.ListExpr).items;
    const stmts = [...nodes(ctx, 'paramsSection'), ...nodes(ctx, 'returnStmt'), ...nodes(ctx, 'binding')].sort(byOffset);
    this.checkSeparated(stmts, nodes(ctx, 'sep'));
    let params: A.ParamDecl[] | null = null;
    let paramsLoc: Loc | null = null;
    let result: { expr: A.Expr; loc: Loc } | null = null;
    let misplacedReturn = false;
    const body: A.Assign[] = [];
    for (const s of stmts) {
      const loc = cstLoc(s.location);
      if (s.name === 'paramsSection') {
        const ps = this.run(s) as A.ParamDecl[];
        if (paramsLoc) this.error(loc, `duplicate 'params' section in layer '${name}' (first at ${where(paramsLoc)})`);
        else if (body.length > 0 || result) this.error(loc, `'params' must come first in layer '${name}'`);
        else [params, paramsLoc] = [ps, loc];
      } else if (s.name === 'returnStmt') {
        if (result) this.error(loc, `layer '${name}' has more than one 'return'`);
        else result = { expr: this.run(s) as A.Expr, loc };
      } else {
        body.push(this.run(s) as A.Assign);
        if (result && !misplacedReturn) {
          misplacedReturn = true;
          this.error(result.loc, `'return' must be the last statement of layer '${name}'`);
        }
      }
    }
    if (!result) {
      this.error(tokenLoc(tok(ctx, 'RCurly')), `layer '${name}' must end with 'return EXPR'`);
      return null;
    }
    return {
      kind: 'layer', name, nameLoc: tokenLoc(nameTok), inputs, output, outputLoc: cstLoc(outNode.location),
      params: params ?? [], body, result: result.expr, returnLoc: result.loc, loc: cstLoc(self.location),
    };
  }

  speculativeSection(ctx: Ctx): A.SpecEntry[] {
    const items = nodes(ctx, 'specEntry');
    this.checkSeparated(items, nodes(ctx, 'sep'));
    return items.map((n) => this.run(n) as A.SpecEntry);
  }

  specEntry(ctx: Ctx, self: CstNode): A.SpecEntry {
    const t = tok(ctx, 'Identifier');
    const str = ctx.StringLiteral ? tok(ctx, 'StringLiteral') : null;
    const value: A.SpecEntry['value'] = str ? { kind: 'string', value: str.image.slice(1, -1), loc: tokenLoc(str) } : this.expr(node(ctx, 'expression'));
    return { key: t.image, keyLoc: tokenLoc(t), value, loc: cstLoc(self.location) };
  }

  returnStmt(ctx: Ctx): A.Expr {
    return this.expr(node(ctx, 'expression'));
  }

  binding(ctx: Ctx, self: CstNode): A.Assign {
    const t = tok(ctx, 'Identifier');
    return { kind: 'assign', target: t.image, targetLoc: tokenLoc(t), value: this.expr(node(ctx, 'expression')), loc: cstLoc(self.location) };
  }

  typedName(ctx: Ctx, self: CstNode): A.ParamDecl {
    const t = tok(ctx, 'Identifier');
    const list = node(ctx, 'list');
    return {
      name: t.image, nameLoc: tokenLoc(t),
      shape: (this.run(list) as A.ListExpr).items, shapeLoc: cstLoc(list.location), loc: cstLoc(self.location),
    };
  }

  sep(): void {}
}

/** Builds the AST; `ast` is null when the structure is invalid. */
export function buildAst(cst: CstNode, file: string): { ast: A.Model | null; diagnostics: Diagnostic[]; others: A.Model[] } {
  const builder = new AstBuilder(file);
  const ast = builder.visit(cst, cst) as A.Model | null;
  const bad = builder.diagnostics.length > 0;
  return { ast: bad ? null : ast, diagnostics: builder.diagnostics, others: bad ? [] : builder.others };
}
